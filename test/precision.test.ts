import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import Database from 'better-sqlite3';
import { AddonUnavailable, setTorchPrecision, useTorch } from '../src/backend/torch/index.ts';
import { loadRunConfig } from '../src/config/load.ts';
import { gatedSilu } from '../src/model/layers.ts';
import { PrecisionError, resolvePrecision } from '../src/train/precision.ts';
import { runCli, tempDir, writeConfig } from './helpers/cli.ts';

const torchLoads = await useTorch('cpu').then(() => true, (e) => {
  if (!(e instanceof AddonUnavailable)) throw e;
  return false;
});
const skip = !torchLoads && 'the torch addon is not built here';

test('precision defaults to bf16 on CUDA and fp32 elsewhere; bf16 and tf32 need the torch backend', () => {
  const dir = tempDir();
  const config = (sets: string[] = []) => loadRunConfig(writeConfig(dir), sets);
  assert.equal(resolvePrecision(config(), 'torch', 'cuda:0'), 'bf16');
  assert.equal(resolvePrecision(config(), 'torch', 'cpu'), 'fp32');
  assert.equal(resolvePrecision(config(), 'wasm'), 'fp32');
  assert.equal(resolvePrecision(config(['train.precision=tf32']), 'torch', 'cuda:0'), 'tf32');
  assert.equal(resolvePrecision(config(['train.precision=fp32']), 'wasm'), 'fp32');
  for (const p of ['bf16', 'tf32']) {
    assert.throws(() => resolvePrecision(config([`train.precision=${p}`]), 'wasm'),
      (e: unknown) => e instanceof PrecisionError && e.exitCode === 2 && e.message.includes(`train.precision: ${p}`) && e.message.includes('--backend torch'));
  }
});

test('bf16 on wasm is refused with exit 2 before anything is written', () => {
  const dir = tempDir();
  const r = runCli(['train', writeConfig(dir), '--backend', 'wasm', '--set', 'train.precision=bf16']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /train\.precision: bf16 needs the torch backend/);
  assert.ok(!existsSync(join(dir, 'runs')), 'nothing written');
});

test('torch bf16 rounds the operands of products and the SwiGLU to bfloat16, and nothing else', { skip }, () => {
  const x = 1 + 2 ** -10; // exact in float32, rounds to 1 in bfloat16 (8 significant bits)
  const compute = () => tf.tidy(() => [
    tf.matMul(tf.tensor2d([[x]]), tf.tensor2d([[1]])).dataSync()[0]!,
    tf.add(tf.scalar(x), tf.scalar(0)).dataSync()[0]!,
    gatedSilu(tf.tensor2d([[30]]), tf.tensor2d([[x]])).dataSync()[0]!,
  ]);
  try {
    setTorchPrecision('bf16');
    const [product, sum, swiglu] = compute();
    assert.equal(product, 1, 'the product computes in bfloat16');
    assert.equal(sum, x, 'element-wise ops stay float32');
    assert.equal(swiglu, 30, 'SiLU(30)·x in bfloat16');
    setTorchPrecision('fp32');
    assert.deepEqual(compute().slice(0, 2), [x, x], 'fp32 is exact again');
  } finally {
    setTorchPrecision('fp32');
  }
});

const losses = (dir: string) => {
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  try {
    return (db.prepare("SELECT value FROM scalars WHERE name = 'train/loss' ORDER BY step").all() as { value: number }[]).map((r) => r.value);
  } finally {
    db.close();
  }
};

// Tolerance: bf16 keeps 8 significant bits in the products only; on this
// 30-step run the curves differ by about 0.005 nats (smoke config: 0.004 at most).
const BF16_LOSS_TOLERANCE = 0.05;

test(`a bf16 run's loss curve stays within ${BF16_LOSS_TOLERANCE} of the fp32 run's; runs shows the precision`, { skip }, () => {
  const curves = ['fp32', 'bf16'].map((precision) => {
    const dir = tempDir();
    const r = runCli(['train', writeConfig(dir, { train: { steps: 20, diag_every: 10, checkpoint_every: 0 } }), '--backend', 'torch', '--device', 'cpu', '--set', `train.precision=${precision}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`, ${precision} `));
    assert.match(r.stdout, /native tensor peak [1-9]\d* MiB/, 'the summary gives the native peak, not tfjs\'s count of freed tensors');
    const runs = runCli(['runs', '--runs-dir', join(dir, 'runs')]);
    assert.match(runs.stdout, new RegExp(`torch ${precision}`));
    return losses(dir);
  });
  const [fp32, bf16] = curves as [number[], number[]];
  assert.equal(bf16.length, fp32.length);
  const worst = Math.max(...fp32.map((l, i) => Math.abs(l - bf16[i]!)));
  assert.ok(worst <= BF16_LOSS_TOLERANCE, `max |Δ loss| ${worst}`);
  assert.ok(worst > 0, 'bf16 changed the arithmetic');
});
