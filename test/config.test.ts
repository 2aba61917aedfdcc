import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { configHash, canonicalJson } from '../src/config/hash.ts';
import { ConfigError, loadRunConfig, resolveRunConfig } from '../src/config/load.ts';
import { PRESETS } from '../src/config/presets.ts';
import type { RunConfig } from '../src/config/schema.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'normlab-config-'));
let files = 0;

function writeConfig(text: string): string {
  const file = path.join(dir, `c${files++}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** Asserts that loading fails with a ConfigError whose message starts "<file>: <key>:". */
function assertRefused(file: string, sets: string[], key: string, mentions: string[] = []): void {
  assert.throws(() => loadRunConfig(file, sets), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.exitCode, 2);
    assert.ok(e.message.startsWith(`${file}: ${key}: `), e.message);
    assert.ok(!e.message.includes('\n'), `one paragraph: ${e.message}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `"${m}" missing from: ${e.message}`);
    return true;
  });
}

const nano = writeConfig('model: { preset: nano }\n');

test('every preset resolves to its dimensions and passes the model checks', () => {
  for (const [name, dims] of Object.entries(PRESETS)) {
    const cfg = resolveRunConfig({ model: { preset: name } }, `preset-${name}`);
    assert.deepEqual({ ...cfg.model, ...dims }, cfg.model, name);
    assert.equal(cfg.model_preset, name);
  }
  assert.deepEqual(
    PRESETS['130m'],
    { vocab_size: 32000, d_model: 768, ffn_dim: 2048, n_layers: 12, n_heads: 12 },
  );
});

test('omitted sections take their defaults, and the db lives in runs_dir', () => {
  const cfg = loadRunConfig(nano);
  assert.equal(cfg.name, path.parse(nano).name);
  assert.equal(cfg.train.steps, 1000);
  assert.equal(cfg.train.warmup_steps, 100);
  assert.equal(cfg.train.grad_clip, 1.0);
  assert.equal(cfg.model.norm, 'pre');
  assert.equal(cfg.model.embed_norm, null);
  assert.deepEqual(cfg.data, { corpus: 'brown', tokenizer: 'byte', val_fraction: 0.05, batching: 'packed' });
  assert.deepEqual(cfg.output, { runs_dir: 'runs', db: path.join('runs', 'normlab.sqlite') });
  assert.equal(loadRunConfig(nano, ['output.runs_dir=/tmp/x']).output.db, path.join('/tmp/x', 'normlab.sqlite'));
});

test('a short run without an explicit warm-up gets min(100, steps)', () => {
  assert.equal(loadRunConfig(nano, ['train.steps=2']).train.warmup_steps, 2);
});

test('a model without a preset needs every dimension', () => {
  const full = writeConfig('model: { vocab_size: 256, d_model: 32, n_layers: 1, n_heads: 2, ffn_dim: 64 }\n');
  assert.equal(loadRunConfig(full).model.d_model, 32);
  assert.equal(loadRunConfig(full).model_preset, undefined);
  assertRefused(writeConfig('model: { vocab_size: 256, n_layers: 1, n_heads: 2, ffn_dim: 64 }\n'), [], 'model.d_model', ['missing', 'preset']);
});

test('--set overrides values of every type, creating absent sections', () => {
  const cfg = loadRunConfig(nano, [
    'train.steps=2', 'train.lr=1e-3', 'model.norm=post', 'model.qk_norm=true',
    'model.embed_norm=null', 'data.tokenizer=byte', 'name=override',
  ]);
  assert.equal(cfg.train.steps, 2);
  assert.equal(cfg.train.lr, 0.001);
  assert.equal(cfg.model.norm, 'post');
  assert.equal(cfg.model.qk_norm, true);
  assert.equal(cfg.model.embed_norm, null);
  assert.equal(cfg.name, 'override');
});

test('--set of a model field overrides the preset; --set of the preset swaps it', () => {
  assert.equal(loadRunConfig(nano, ['model.d_model=128']).model.d_model, 128);
  const tiny = loadRunConfig(nano, ['model.preset=tiny']);
  assert.equal(tiny.model.d_model, 128);
  assert.equal(tiny.model_preset, 'tiny');
});

test('--set of a key the schema lacks fails naming the key', () => {
  assertRefused(nano, ['train.stepz=2'], 'train.stepz', ['unknown key', 'steps, batch_size']);
  assertRefused(nano, ['trian.steps=2'], 'trian', ['unknown key', 'train']);
  assertRefused(nano, ['train.steps.max=2'], 'train.steps.max', ['not a section']);
  assert.throws(() => loadRunConfig(nano, ['train.steps']), ConfigError);
});

test('each kind of bad config names the file and the dotted key', () => {
  const cases: [yaml: string, key: string, mentions: string[]][] = [
    ['model: { preset: nano }\ntrain: { stepz: 3 }\n', 'train.stepz', ['unknown key', 'steps']],
    ['model: { preset: nano }\ntrian: { steps: 3 }\n', 'trian', ['unknown key']],
    ['model: { preset: nano, colour: red }\n', 'model.colour', ['unknown key', 'd_model']],
    ['model: { preset: nano }\ntrain: { lr: fast }\n', 'train.lr', ['expected number', '"fast"']],
    ['model: { preset: nano }\ntrain: { steps: 2.5 }\n', 'train.steps', ['integer']],
    ['model: { preset: nano, norm: prelm }\n', 'model.norm', ['expected one of pre, post', '"prelm"']],
    ['model: { preset: nano }\ntrain: { steps: -5 }\n', 'train.steps', ['-5']],
    ['model: { preset: nano }\ntrain: { lr: 0 }\n', 'train.lr', ['> 0']],
    ['model: { preset: nano }\ntrain: { beta2: 1 }\n', 'train.beta2', ['< 1']],
    ['model: { preset: nano, d_model: 100, n_heads: 3 }\n', 'model.n_heads', ['divisible']],
    ['model: { preset: nano, norm: mix, mix_alpha: 1.5 }\n', 'model.mix_alpha', ['[0, 1]']],
    ['model: { preset: nano, norm: none, qk_norm: true }\n', 'model.qk_norm', ['none']],
    ['model: { preset: huge }\n', 'model.preset', ['nano', '"huge"']],
    ['model: { preset: nano }\ndata: { tokenizer: gpt2 }\n', 'model.vocab_size', ['50257']],
    ['model: { preset: nano }\ndata: { corpus: c4 }\n', 'data.corpus', ['brown']],
    ['model: { preset: nano }\noutput: { format: csv }\n', 'output.format', ['unknown key']],
    ['train: { steps: 3 }\n', 'model', ['missing']],
  ];
  for (const [yaml, key, mentions] of cases) assertRefused(writeConfig(yaml), [], key, mentions);
});

test('data: sources, text field, split seed and both batchings validate; llama needs a 32000 vocab', () => {
  const cfg = loadRunConfig(nano, ['data.source=[a.json.gz, "c4/*.json.gz"]', 'data.text_field=content', 'data.split_seed=3', 'data.batching=truncate', 'data.skip_bad_lines=true']);
  assert.deepEqual(cfg.data, {
    corpus: 'brown', source: ['a.json.gz', 'c4/*.json.gz'], text_field: 'content', split_seed: 3,
    batching: 'truncate', skip_bad_lines: true, tokenizer: 'byte', val_fraction: 0.05,
  });
  assert.equal(loadRunConfig(nano, ['data.tokenizer=llama', 'model.vocab_size=32000']).data.tokenizer, 'llama');
  assertRefused(nano, ['data.tokenizer=llama'], 'model.vocab_size', ['32000', 'llama']);
  assertRefused(nano, ['data.batching=shuffled'], 'data.batching', ['packed, truncate']);
  assertRefused(nano, ['data.split_seed=-1'], 'data.split_seed', ['-1']);
  assertRefused(nano, ['data.source=[]'], 'data.source', []);
});

test('a missing file is a ConfigError naming the file', () => {
  const missing = path.join(dir, 'absent.yaml');
  assert.throws(() => loadRunConfig(missing), (e: unknown) =>
    e instanceof ConfigError && e.exitCode === 2 && e.message.startsWith(`${missing}: `) && /no such file/.test(e.message));
});

test('a YAML syntax error is a ConfigError naming the file and the line', () => {
  const bad = writeConfig('model:\n  preset: nano\ntrain: { steps: 3\n');
  assert.throws(() => loadRunConfig(bad), (e: unknown) =>
    e instanceof ConfigError && e.message.startsWith(`${bad}: YAML syntax error at line `) && !e.message.includes('\n'));
  const dup = writeConfig('model: { preset: nano }\nmodel: { preset: tiny }\n');
  assert.throws(() => loadRunConfig(dup), /line 2/);
  assert.throws(() => loadRunConfig(writeConfig('- a\n- b\n')), /expected a mapping at the top level/);
});

test('the hash ignores label, output and logging cadence but not the learning rate', () => {
  const base = loadRunConfig(nano);
  const cosmetic = loadRunConfig(nano, [
    'name=other', 'output.runs_dir=elsewhere', 'output.db=x.sqlite', 'train.log_every=7',
    'train.diag_every=0', 'train.checkpoint_every=3', 'train.keep_checkpoints=9',
  ]);
  assert.equal(configHash(cosmetic), configHash(base));
  assert.match(configHash(base), /^[0-9a-f]{16}$/);
  assert.notEqual(configHash(loadRunConfig(nano, ['train.lr=2e-3'])), configHash(base));
  assert.notEqual(configHash(loadRunConfig(nano, ['train.eval_every=50'])), configHash(base));
});

test('the hash is the same for a preset and the same dimensions written out', () => {
  const written = resolveRunConfig({ model: { ...PRESETS.nano } }, 'written');
  const preset = resolveRunConfig({ model: { preset: 'nano' } }, 'preset');
  assert.equal(configHash(written), configHash(preset));
  const peri = resolveRunConfig({ model: { preset: 'nano', norm: 'peri' } }, 'a');
  const periExplicit = resolveRunConfig({ model: { preset: 'nano', norm: 'peri', embed_norm: true } }, 'b');
  assert.equal(configHash(peri), configHash(periExplicit));
  const periOff = resolveRunConfig({ model: { preset: 'nano', norm: 'peri', embed_norm: false } }, 'c');
  assert.notEqual(configHash(peri), configHash(periOff));
});

test('canonical JSON does not depend on key order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [3, { y: 1, x: 2 }], c: null } }), '{"a":{"c":null,"d":[3,{"x":2,"y":1}]},"b":1}');
  assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
});

test('every file in configs/ loads', () => {
  const root = fileURLToPath(new URL('../configs/', import.meta.url));
  const loaded = new Map<string, RunConfig>();
  for (const rel of readdirSync(root, { recursive: true }) as string[]) {
    // configs/sweeps holds sweep files (their own tests); their bases are run configs.
    const isSweep = rel.startsWith(`sweeps${path.sep}`) && !rel.endsWith('.base.yaml');
    if (rel.endsWith('.yaml') && !isSweep) loaded.set(rel, loadRunConfig(path.join(root, rel)));
  }
  assert.ok(loaded.size >= 4, `found ${[...loaded.keys()].join(', ')}`);
  const smoke = loaded.get('smoke.yaml')!;
  assert.equal(smoke.model.d_model, 64);
  assert.ok(smoke.train.steps <= 100);
  const mix = loaded.get('mixln-130m.yaml')!;
  assert.equal(mix.model.norm, 'mix');
  assert.equal(mix.model.d_model, 768);
  assert.equal(mix.train.grad_clip, 0);
  assert.equal(loaded.get(path.join('bench', 'small.yaml'))!.model.vocab_size, 32000);
});

test('a warm-up longer than the run is accepted (a few steps of a paper recipe)', () => {
  const cfg = loadRunConfig(fileURLToPath(new URL('../configs/mixln-130m.yaml', import.meta.url)), ['train.steps=2', 'train.batch_size=1', 'train.micro_batch_size=1']);
  assert.equal(cfg.train.steps, 2);
  assert.equal(cfg.train.warmup_steps, 2000);
});

test('mix with no Post-LN block is refused naming the smallest α and depth, unless mix_alpha: 0 is written', () => {
  const mix = (model: object) => resolveRunConfig({ model: { preset: 'nano', norm: 'mix', ...model } }, 'mix.yaml');
  assert.throws(() => mix({ n_layers: 2 }), (e: Error) => e instanceof ConfigError &&
    /model\.mix_alpha: norm: mix with mix_alpha 0\.25 and n_layers 2 makes ⌊0\.25·2⌋ = 0 blocks Post-LN.*mix_alpha ≥ 0\.5.*n_layers ≥ 4.*mix_alpha: 0 explicitly/.test(e.message));
  assert.throws(() => mix({ n_layers: 12, mix_alpha: 0.05 }), /mix_alpha ≥ 0\.0834.*n_layers ≥ 20/);
  assert.equal(mix({ n_layers: 4 }).model.mix_alpha, 0.25, 'one Post-LN block');
  assert.equal(mix({ n_layers: 2, mix_alpha: 0 }).model.mix_alpha, 0, 'explicit α = 0: the papers\' sweep end point');
});
