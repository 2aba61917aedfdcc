import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { loadRunConfig } from '../src/config/load.ts';
import { checkFitsBackend, estimateTrainingBytes, MemoryLimitError } from '../src/train/memory.ts';

const config = (file: string, sets: string[] = []) => loadRunConfig(fileURLToPath(new URL(`../configs/${file}`, import.meta.url)), sets);

test('the 130M preset is refused on wasm with the native alternatives named, and allowed elsewhere', () => {
  const big = config('mixln-130m.yaml', ['train.steps=2', 'train.batch_size=1']);
  assert.throws(() => checkFitsBackend(big, 'wasm'), (e: unknown) =>
    e instanceof MemoryLimitError && e.exitCode === 2 && /4 GiB/.test(e.message) && /--backend torch/.test(e.message) && /134M parameters/.test(e.message));
  assert.doesNotThrow(() => checkFitsBackend(big, 'torch'));
});

test('small models fit wasm; the estimate grows with batch size', () => {
  const smoke = config('smoke.yaml');
  assert.doesNotThrow(() => checkFitsBackend(smoke, 'wasm'));
  assert.ok(estimateTrainingBytes(config('smoke.yaml', ['train.batch_size=64'])) > estimateTrainingBytes(smoke));
});
