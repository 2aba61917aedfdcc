// configs/paper/* and the paper sweeps against PAPERS.md's recipe table, so the recipes cannot drift.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadRunConfig } from '../src/config/load.ts';
import type { RunConfig } from '../src/config/schema.ts';
import { expandSweep } from '../src/sweep/plan.ts';
import { loadSweep } from '../src/sweep/sweepfile.ts';
import { ROOT, runCli, tempDir } from './helpers/cli.ts';

interface Row { preset: string; hidden: number; ffn: number; blocks: number; heads: number; steps: number; warmup: number; lr: number }

/** The recipe table of /work/shared/spec/PAPERS.md as committed in docs (the spec's copy when present). */
function recipeTable(): Row[] {
  const spec = ['/work/shared/spec/PAPERS.md', join(ROOT, 'docs', 'paper-recipe.md')].find((f) => existsSync(f))!;
  const count = (s: string) => Number(s.replace(/K$/, '')) * (s.endsWith('K') ? 1000 : 1);
  return readFileSync(spec, 'utf8').split('\n')
    .filter((l) => /^\| (71m|130m|250m|350m|1b) \|/.test(l))
    .map((l) => {
      const [preset, hidden, ffn, blocks, heads, steps, warmup, lr] = l.split('|').slice(1, 9).map((c) => c.trim());
      return { preset, hidden: +hidden, ffn: +ffn, blocks: +blocks, heads: +heads, steps: count(steps), warmup: count(warmup), lr: Number(lr) };
    });
}

function assertRecipe(cfg: RunConfig, row: Row, where: string): void {
  const m = cfg.model, t = cfg.train, d = cfg.data;
  assert.deepEqual([m.d_model, m.ffn_dim, m.n_layers, m.n_heads, m.vocab_size], [row.hidden, row.ffn, row.blocks, row.heads, 32000], `${where}: dims`);
  assert.deepEqual([t.steps, t.warmup_steps, t.lr], [row.steps, row.warmup, row.lr], `${where}: schedule`);
  assert.deepEqual([t.batch_size, t.seq_len, t.min_lr_ratio, t.weight_decay, t.grad_clip, t.beta2, t.eval_every], [512, 255, 0.1, 0, 0, 0.999, 1000], `${where}: recipe`);
  assert.equal(t.batch_size % t.micro_batch_size!, 0, `${where}: micro_batch_size divides 512`);
  assert.deepEqual([d.tokenizer, d.batching, d.source, d.val_source, d.eval_tokens], [
    't5', 'truncate', 'data/c4/en/c4-train.*.json.gz', 'data/c4/en/c4-validation.*.json.gz', 10_000_000,
  ], `${where}: data`);
}

test('configs/paper/* are PAPERS.md\'s recipes: dims, steps, warm-up, lr, C4 with T5, batch 512 of 255 + </s>', () => {
  const table = recipeTable();
  assert.equal(table.length, 5);
  for (const row of table) assertRecipe(loadRunConfig(join(ROOT, 'configs', 'paper', `${row.preset}.yaml`)), row, row.preset);
  const mix = loadRunConfig(join(ROOT, 'configs', 'mixln-130m.yaml'));
  assertRecipe(mix, table.find((r) => r.preset === '130m')!, 'mixln-130m');
  assert.deepEqual([mix.model.norm, mix.model.mix_alpha], ['mix', 0.25]);
  const brown = loadRunConfig(join(ROOT, 'configs', 'mixln-130m.yaml'), ['data.corpus=brown', 'data.tokenizer=byte']);
  assert.deepEqual([brown.data.corpus, brown.data.source, brown.data.val_source], ['brown', undefined, undefined], 'naming a corpus replaces the C4 files');
});

test('the paper sweeps are Mix-LN Table 1 and Curse of Depth Table 1 on those recipes', () => {
  const table = new Map(recipeTable().map((r) => [r.preset, r]));
  const expect = { 'paper-mixln': [['71m', '130m', '250m', '1b'], ['post', 'deepnorm', 'pre', 'mix']], 'paper-cod': [['130m', '250m', '350m', '1b'], ['pre', 'lns']] } as const;
  for (const [name, [sizes, norms]] of Object.entries(expect)) {
    const plan = expandSweep(loadSweep(join(ROOT, 'configs', 'sweeps', `${name}.yaml`)));
    assert.equal(plan.runs.length, sizes.length * norms.length, name);
    for (const run of plan.runs) {
      assertRecipe(run.config, table.get(run.config.model_preset!)!, `${name} #${run.index}`);
    }
    assert.deepEqual([...new Set(plan.runs.map((r) => r.config.model_preset))], sizes);
    assert.deepEqual([...new Set(plan.runs.map((r) => r.config.model.norm))].sort(), [...norms].sort());
  }
});

test('sweep --dry-run lists each run with its C4 sources, tokens and GPU-hours at a stated rate', () => {
  const r = runCli(['sweep', join(ROOT, 'configs', 'sweeps', 'paper-mixln.yaml'), '--dry-run'], tempDir());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /#1 .*data\/c4\/en\/c4-train\.\*\.json\.gz \(t5\) {2}1\.3B tokens {2}[\d.]+ GPU-h .*model\.preset=71m/);
  assert.match(r.stdout, /#16 .*13B tokens {2}[\d.]+ GPU-h .*model\.preset=1b/);
  assert.match(r.stdout, /total [\d.]+B tokens, \d+ GPU-hours at 400 TFLOP\/s sustained/);
});

test('the README command on a fresh machine stops before writing anything, naming C4 and T5 and how to get them', () => {
  const dir = tempDir();
  const r = runCli(['train', join(ROOT, 'configs', 'mixln-130m.yaml'), '--set', `output.runs_dir=${join(dir, 'runs')}`], dir, { HF_HUB_CACHE: join(dir, 'hub'), NORMLAB_TOKENIZERS: '' });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /tokenizer 't5': no tokenizer\.json found.*huggingface-cli download t5-base/);
  assert.match(r.stderr, /c4-train\.\*\.json\.gz: the pattern matches no file\. C4 English .*allenai\/c4.*--set data\.corpus=brown --set data\.tokenizer=byte/);
  assert.equal(existsSync(join(dir, 'runs')), false, 'nothing written');
});
