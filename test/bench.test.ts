import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelFlopsPerToken } from '../src/bench/bench.ts';
import { loadRunConfig } from '../src/config/load.ts';
import { parameterCount } from '../src/model/model.ts';
import { ROOT, runCli } from './helpers/cli.ts';

const tiny = `${ROOT}/configs/bench/tiny.yaml`;

test('the bench configs are the models issue 6 names', () => {
  const { model: m, train: t } = loadRunConfig(tiny);
  assert.deepEqual(
    [m.vocab_size, m.d_model, m.n_layers, m.n_heads, m.ffn_dim, m.norm, m.norm_type, t.batch_size, t.seq_len],
    [256, 128, 2, 4, 384, 'pre', 'rmsnorm', 8, 128],
  );
  const small = loadRunConfig(`${ROOT}/configs/bench/small.yaml`).model;
  const blocks = parameterCount(small) - 2 * small.vocab_size * small.d_model;
  assert.ok(blocks > 20e6 && blocks < 30e6, `about 25M parameters in the blocks, got ${blocks}`);
});

test('model FLOPs per token are 6·N without the embedding plus 12·L·d·T', () => {
  const { model } = loadRunConfig(tiny);
  const n = parameterCount(model) - 256 * 128;
  assert.equal(modelFlopsPerToken(model, 128), 6 * n + 12 * 2 * 128 * 128);
});

test('normlab bench times steps, reports throughput, MFU and memory, and leaks no tensor', () => {
  const r = runCli(['bench', tiny, '--backend', 'wasm', '--steps', '2', '--warmup', '1', '--diagnostic-steps', '1', '--peak', '100', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.backend.name, 'wasm');
  assert.equal(result.tokensPerStep, 1024);
  assert.ok(result.msPerStep > 0 && result.tokensPerSecond > 0);
  assert.ok(Math.abs(result.tokensPerSecond - 1024 / (result.msPerStep / 1000)) < 1e-6);
  assert.ok(Math.abs(result.mfu - result.gflopsPerSecond / 100) < 1e-12);
  assert.ok(result.memory.peakRssBytes > 0 && result.memory.tensorBytes > 0);
  assert.equal(result.memory.tensorsAfter, result.memory.tensorsBefore);
});

test('normlab bench prints one readable block', () => {
  const r = runCli(['bench', tiny, '--backend', 'wasm', '--steps', '1', '--warmup', '1', '--diagnostic-steps', '0', '--peak', '100']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /bench-tiny: 492,160 parameters/);
  assert.match(r.stdout, /tokens\/s/);
  assert.match(r.stdout, /MFU \d+\.\d% of 100 GFLOP\/s \(given with --peak\)/);
  assert.match(r.stdout, /peak RSS/);
});

test('normlab bench refuses a model the wasm heap cannot hold, naming the alternative', () => {
  const r = runCli(['bench', `${ROOT}/configs/bench/130m.yaml`, '--backend', 'wasm', '--peak', '100']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /4 GiB address space.*--backend torch/s);
});

test('normlab bench rejects a bad step count', () => {
  const r = runCli(['bench', tiny, '--steps', 'many']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /expected a whole number/);
});
