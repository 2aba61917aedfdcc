import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { loadRunConfig } from '../src/config/load.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkFitsBackend, estimateTrainingBytes, fittingMicroBatch, MemoryLimitError, planMemory } from '../src/train/memory.ts';
import { runCli, tempDir } from './helpers/cli.ts';

const config = (file: string, sets: string[] = []) => loadRunConfig(fileURLToPath(new URL(`../configs/${file}`, import.meta.url)), sets);

test('the 130M preset is refused on wasm with the native alternatives named, and allowed elsewhere', () => {
  const big = config('mixln-130m.yaml', ['train.steps=2', 'train.batch_size=1', 'train.micro_batch_size=1']);
  assert.throws(() => checkFitsBackend(big, 'wasm'), (e: unknown) =>
    e instanceof MemoryLimitError && e.exitCode === 2 && /4 GiB/.test(e.message) && /--backend torch/.test(e.message) && /134M parameters/.test(e.message));
  assert.doesNotThrow(() => checkFitsBackend(big, 'torch'));
});

test('small models fit wasm; the estimate grows with batch size', () => {
  const smoke = config('smoke.yaml');
  assert.doesNotThrow(() => checkFitsBackend(smoke, 'wasm'));
  assert.ok(estimateTrainingBytes(config('smoke.yaml', ['train.batch_size=64']), 'wasm') > estimateTrainingBytes(smoke, 'wasm'));
});

test('the plan splits memory by part; accumulation shrinks activations and keeps a second gradient', () => {
  const whole = planMemory(config('mixln-130m.yaml', ['train.micro_batch_size=512']), 'torch');
  const split = planMemory(config('mixln-130m.yaml', ['train.micro_batch_size=16']), 'torch');
  assert.equal(whole.parameters, split.parameters);
  assert.deepEqual([whole.microBatches, split.microBatches, split.tokensPerStep], [1, 32, 512 * 255]);
  assert.equal(whole.bytes.weights, 4 * whole.parameters);
  assert.equal(whole.bytes.optimizer, 8 * whole.parameters);
  assert.equal(split.bytes.gradients, 2 * whole.bytes.gradients);
  assert.ok(Math.abs(split.bytes.activations * 32 - whole.bytes.activations) < 1);
  const sum = (b: typeof whole.bytes) => b.weights + b.optimizer + b.gradients + b.workspace + b.activations;
  assert.equal(whole.bytes.total, sum(whole.bytes));
  assert.equal(fittingMicroBatch(config('mixln-130m.yaml'), 'torch', split.bytes.total), 16);
});

test('every backend refuses a step that cannot fit its memory, naming train.micro_batch_size', () => {
  // 130M at batch 4096 × 256: terabytes of activations, more than any machine's RAM.
  const huge = config('mixln-130m.yaml', ['train.batch_size=4096', 'train.micro_batch_size=4096']);
  for (const backend of ['torch', 'cpu', 'tensorflow']) {
    assert.throws(() => checkFitsBackend(huge, backend, { device: 'cpu' }), (e: unknown) =>
      e instanceof MemoryLimitError && /more than RAM allows/.test(e.message) && /train\.micro_batch_size: \d+/.test(e.message), backend);
  }
  assert.doesNotThrow(() => checkFitsBackend(config('smoke.yaml'), 'torch', { device: 'cpu' }));
  // Data parallel: each rank plans its share of the batch; ranks on one machine share its RAM.
  const recipe = config('mixln-130m.yaml');
  assert.equal(planMemory(recipe, 'torch', undefined, 4).microBatch, 128);
  assert.throws(() => checkFitsBackend(recipe, 'torch', { device: 'cpu', ranks: 4, localRanks: 4 }), (e: unknown) =>
    e instanceof MemoryLimitError && /micro-batch 128 × 255/.test(e.message) && /shared by 4 ranks/.test(e.message) && /on each rank/.test(e.message));
});

test('normlab train refuses the 130M recipe up front (exit 2, nothing written); plan and --dry-run show the estimate', () => {
  const dir = tempDir();
  const out = `output.runs_dir=${join(dir, 'runs')}`;
  const recipe = fileURLToPath(new URL('../configs/mixln-130m.yaml', import.meta.url));
  const big = ['--set', 'train.batch_size=4096', '--set', 'train.micro_batch_size=4096', '--set', 'data.corpus=brown', '--set', 'data.tokenizer=byte', '--set', out];
  for (const backend of ['torch', 'wasm']) {
    const r = runCli(['train', recipe, '--backend', backend, ...big]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /train\.micro_batch_size|lower train\.seq_len/);
  }
  const plan = runCli(['plan', recipe, '--backend', 'torch', ...big]);
  assert.equal(plan.code, 2);
  assert.match(plan.stdout, /134,105,856 parameters; 1,044,480 tokens per step/);
  assert.match(plan.stdout, /activations +\d+\.\d+ GiB at micro-batch 4096/);
  assert.match(plan.stdout, /does NOT fit/);
  const smoke = fileURLToPath(new URL('../configs/smoke.yaml', import.meta.url));
  const dry = runCli(['train', smoke, '--dry-run', '--backend', 'wasm', '--set', out]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /139,584 parameters; 256 tokens per step \(batch 4 × seq 64, 1 micro-batch of 4\)/);
  assert.match(dry.stdout, /AdamW state .*\n.*gradients .*\n.*workspace .*\n.*activations .*\n.*total .*: fits/, 'wasm has the tfjs copies');
  assert.ok(!existsSync(join(dir, 'runs')), 'nothing written');
});
