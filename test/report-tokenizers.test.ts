// Issue 20: perplexities are per token, so a report whose runs used different
// tokenizers says so under its table; LLaMA's and GPT-2's are marked as not
// the papers' vocabulary. Exercised through the CLI, as a user meets it.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { ROOT, runCli, tempDir } from './helpers/cli.ts';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'unigram');

/** Trains a 2-step nano run named `name` under `runs` with `data`; fails the test if training fails. */
function train(dir: string, runs: string, name: string, data: object, vocab: number): void {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, stringify({
    name, model: { preset: 'nano', n_layers: 2, vocab_size: vocab },
    train: { steps: 2, batch_size: 2, seq_len: 16, warmup_steps: 1, eval_every: 2, eval_batches: 1, checkpoint_every: 0 },
    data, output: { runs_dir: runs },
  }));
  const r = runCli(['train', config, '--backend', 'wasm', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
}

test('report warns in its summary when its runs used different tokenizers, and not when they share one', () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'tok'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(FIXTURE, f), join(dir, 'tok', f));
  const runs = join(dir, 'runs');
  train(dir, runs, 'llama', { corpus: 'brown', tokenizer: 'llama' }, 32000);
  const alone = runCli(['report', '--runs-dir', runs]);
  assert.equal(alone.code, 0, alone.stderr);
  assert.match(alone.stdout, /tokenizer llama \(not comparable with the papers' perplexities\)\./);
  assert.doesNotMatch(alone.stdout, /WARNING/, 'one tokenizer: nothing to warn about');

  train(dir, runs, 'unigram', { source: join(FIXTURE, 'docs.jsonl'), tokenizer: join(dir, 'tok'), batching: 'truncate' }, 2048);
  const mixed = runCli(['report', '--runs-dir', runs]);
  assert.equal(mixed.code, 0, mixed.stderr);
  const llama = /llama \(not comparable with the papers' perplexities\)/.source;
  const file = /tok\/tokenizer\.json \(sha256 [0-9a-f]{12}\)/.source;
  assert.match(mixed.stdout, new RegExp(`WARNING: these runs used different tokenizers \\((${llama}; ${file}|${file}; ${llama})\\): perplexities are per token of each, so the val ppl column mixes incomparable numbers\\.`));
  const json = JSON.parse(runCli(['report', '--runs-dir', runs, '--format', 'json']).stdout);
  assert.match(json.summary, /WARNING: these runs used different tokenizers/, 'in every format');
});
