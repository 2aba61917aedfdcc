import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BackendError, useBackend } from '../src/backend/index.ts';
import { ADDON_PATH } from '../src/backend/torch/addon.ts';
import { assertMatchesCpu, ids, type Input, makeInputs, MODEL_OPS, x } from './helpers/ops.ts';


test('the wasm UnsortedSegmentSum kernel matches the cpu backend', async (t) => {
  const cases: { name: string; inputs: Input[]; numSegments: number }[] = [
    { name: 'rank-1 ids with repeats and out-of-range ids', inputs: [x(8, 3), { shape: [8], dtype: 'int32', values: (i) => [2, 0, 2, -1, 4, 7, 0, 2][i] }], numSegments: 5 },
    { name: 'int32 values', inputs: [ids([6, 2], 9), ids([6], 3)], numSegments: 3 },
    { name: '512 rows into 200 segments', inputs: [x(512, 32), ids([512], 200)], numSegments: 200 },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assertMatchesCpu('wasm', {
      name: c.name,
      inputs: c.inputs,
      // As float32: tfjs's cpu kernel returns float32 sums of int32 values, wasm int32.
      f: (v, s) => tf.unsortedSegmentSum(v, s as tf.Tensor1D, c.numSegments).toFloat(),
      wrt: [],
    }));
  }
});

test('the wasm UnsortedSegmentSum takes rank-2 ids like their flattening', async () => {
  // Not compared with cpu: tfjs's cpu kernel mis-broadcasts ids of rank > 1.
  await useBackend('wasm');
  const [values, segmentIds] = makeInputs([x(2, 3, 4), ids([2, 3], 4)]);
  const rank2 = tf.unsortedSegmentSum(values, segmentIds as tf.Tensor1D, 4);
  const flat = tf.unsortedSegmentSum(values.reshape([6, 4]), segmentIds.reshape([6]) as tf.Tensor1D, 4);
  assert.deepEqual(rank2.shape, [4, 4]);
  assert.deepEqual(await rank2.data(), await flat.data());
  tf.dispose([values, segmentIds, rank2, flat]);
});

test('transposed and batched products on wasm leave no tensor data behind', async () => {
  await useBackend('wasm');
  const [q, k] = makeInputs([x(2, 3, 6, 4), x(2, 3, 6, 4)]);
  const before = tf.backend().numDataIds();
  tf.matMul(q!, k!, false, true).dispose();
  tf.matMul(q!, k!, true, false).dispose();
  assert.equal(tf.backend().numDataIds(), before);
  tf.dispose([q!, k!]);
});

test('the gradient of tf.gather (the embedding) on wasm equals cpu', async () => {
  await assertMatchesCpu('wasm', { name: 'embedding gradient', inputs: [x(50, 8), ids([4, 9], 50)], f: (e, i) => tf.gather(e, i), wrt: [0] });
});

test('every model op and its gradient agree on wasm and cpu', async (t) => {
  for (const c of MODEL_OPS) await t.test(c.name, () => assertMatchesCpu('wasm', c));
});

const installed = (pkg: string) => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};

test("useBackend('tensorflow') without tfjs-node is a BackendError saying what to install", { skip: installed('@tensorflow/tfjs-node') && 'tfjs-node is installed' }, async () => {
  await assert.rejects(useBackend('tensorflow'), (e: Error) =>
    e instanceof BackendError && e.message.includes(`npm install @tensorflow/tfjs-node@${tf.version.tfjs}`));
});

test("useBackend('tensorflow-gpu') sets TF_FORCE_GPU_ALLOW_GROWTH before TensorFlow starts, keeping a user's value", { skip: installed('@tensorflow/tfjs-node-gpu') && 'tfjs-node-gpu is installed' }, async () => {
  const saved = process.env.TF_FORCE_GPU_ALLOW_GROWTH;
  try {
    delete process.env.TF_FORCE_GPU_ALLOW_GROWTH;
    await assert.rejects(useBackend('tensorflow-gpu'), BackendError);
    assert.equal(process.env.TF_FORCE_GPU_ALLOW_GROWTH, 'true');
    process.env.TF_FORCE_GPU_ALLOW_GROWTH = 'false';
    await assert.rejects(useBackend('tensorflow-gpu'), BackendError);
    assert.equal(process.env.TF_FORCE_GPU_ALLOW_GROWTH, 'false');
  } finally {
    if (saved === undefined) delete process.env.TF_FORCE_GPU_ALLOW_GROWTH;
    else process.env.TF_FORCE_GPU_ALLOW_GROWTH = saved;
  }
});

test("useBackend('tensorflow-gpu') without tfjs-node-gpu is a BackendError saying what to install", { skip: installed('@tensorflow/tfjs-node-gpu') && 'tfjs-node-gpu is installed' }, async () => {
  await assert.rejects(useBackend('tensorflow-gpu'), (e: Error) =>
    e instanceof BackendError && e.message.includes(`npm install @tensorflow/tfjs-node-gpu@${tf.version.tfjs}`));
});

test("useBackend('auto') takes torch when its addon is built, else wasm (tfjs-node is not installed)", { skip: (installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu')) && 'tfjs-node is installed' }, async () => {
  const torchBuilt = existsSync(ADDON_PATH);
  const active = await useBackend('auto');
  assert.equal(active.name, torchBuilt ? 'torch' : 'wasm');
  assert.equal(tf.getBackend(), torchBuilt ? 'torch' : 'wasm');
  if (!torchBuilt) assert.equal(active.version, `tfjs ${tf.version.tfjs}, tfjs-backend-wasm ${tf.version.tfjs}`);
});

test('20 gradient computations under tf.tidy leave tf.memory().numTensors flat on wasm', async () => {
  await useBackend('wasm');
  const [embedding, head, tokens] = makeInputs([x(64, 16), x(64, 16), ids([4, 9], 64)]);
  const step = () => tf.tidy(() => {
    const loss = (e: tf.Tensor, h: tf.Tensor) => {
      const logits = tf.matMul(tf.gather(e, tokens.slice([0, 0], [4, 8])).reshape([32, 16]), h, false, true);
      const targets = tf.oneHot(tokens.slice([0, 1], [4, 8]).reshape([32]) as tf.Tensor1D, 64);
      return tf.neg(tf.mean(tf.sum(tf.logSoftmax(logits).mul(targets), -1)));
    };
    const [ge, gh] = tf.grads(loss)([embedding, head]);
    return ge.square().sum().add(gh.square().sum()).dataSync()[0];
  });
  step(); // warm-up: first-use allocations are not leaks
  const before = tf.memory();
  for (let i = 0; i < 20; i++) step();
  assert.equal(tf.memory().numTensors, before.numTensors);
  assert.equal(tf.memory().numBytes, before.numBytes);
  tf.dispose([embedding, head, tokens]);
});
