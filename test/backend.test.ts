import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BackendError, useBackend } from '../src/backend/index.ts';
import { ADDON_PATH } from '../src/backend/torch/addon.ts';
import { ids, type Input, makeInputs, type OpCase, positive, relativeError, valueAndGrads, x } from './helpers/ops.ts';


/** Every op the model, its loss and its optimizer use (MODEL.md §1–§3), each with its gradient. */
const ops: OpCase[] = [
  { name: 'matMul', inputs: [x(3, 4), x(4, 5)], f: (a, b) => tf.matMul(a, b) },
  { name: 'matMul transposeA', inputs: [x(4, 3), x(4, 5)], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'matMul transposeB', inputs: [x(3, 4), x(5, 4)], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'matMul transposeA+B', inputs: [x(4, 3), x(5, 4)], f: (a, b) => tf.matMul(a, b, true, true) },
  { name: 'matMul 128x256 · 384x256ᵀ', inputs: [x(128, 256), x(384, 256)], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'batchMatMul rank 3', inputs: [x(2, 3, 4), x(2, 4, 5)], f: (a, b) => tf.matMul(a, b) },
  { name: 'batchMatMul rank 3 transposeA', inputs: [x(2, 4, 3), x(2, 4, 5)], f: (a, b) => tf.matMul(a, b, true, false) },
  {
    name: 'batchMatMul rank 4 via rank 3, transposeB',
    inputs: [x(2, 3, 6, 4), x(2, 3, 6, 4)],
    f: (q, k) => tf.matMul(q.reshape([6, 6, 4]), k.reshape([6, 6, 4]), false, true).reshape([2, 3, 6, 6]),
  },
  { name: 'gather axis 0', inputs: [x(10, 4), ids([2, 5], 10)], f: (e, i) => tf.gather(e, i), wrt: [0] },
  // Small: tfjs's cpu UnsortedSegmentSum (the reference here) costs O(rows · ids · width).
  { name: 'gather 300x32, 512 repeated ids', inputs: [x(300, 32), ids([8, 64], 200)], f: (e, i) => tf.gather(e, i), wrt: [0] },
  { name: 'gather of an int32 slice', inputs: [x(50, 8), ids([4, 9], 50)], f: (e, t) => tf.gather(e, tf.slice(t, [0, 0], [4, 8])), wrt: [0] },
  { name: 'reshape', inputs: [x(2, 3, 4)], f: (a) => tf.reshape(a, [6, 4]) },
  { name: 'transpose', inputs: [x(2, 3, 4, 5)], f: (a) => tf.transpose(a, [0, 2, 1, 3]) },
  { name: 'slice', inputs: [x(4, 6, 5)], f: (a) => tf.slice(a, [1, 2, 0], [2, 3, -1]) },
  { name: 'concat last axis', inputs: [x(2, 3), x(2, 4)], f: (a, b) => tf.concat([a, b], -1) },
  { name: 'concat axis 0', inputs: [x(2, 3), x(4, 3)], f: (a, b) => tf.concat([a, b], 0) },
  { name: 'softmax', inputs: [x(3, 7)], f: (a) => tf.softmax(a) },
  { name: 'logSoftmax 16x5000', inputs: [x(16, 5000)], f: (a) => tf.logSoftmax(a.mul(5)) },
  { name: 'exp', inputs: [x(3, 4)], f: (a) => tf.exp(a) },
  { name: 'log', inputs: [positive(3, 4)], f: (a) => tf.log(a) },
  { name: 'tanh', inputs: [x(3, 4)], f: (a) => tf.tanh(a) },
  { name: 'sigmoid (SiLU)', inputs: [x(3, 4)], f: (a) => a.mul(tf.sigmoid(a)) },
  { name: 'mul broadcast', inputs: [x(2, 3, 4), x(4)], f: (a, b) => tf.mul(a, b) },
  { name: 'add broadcast', inputs: [x(2, 3, 4), x(3, 1)], f: (a, b) => tf.add(a, b) },
  { name: 'sub broadcast', inputs: [x(2, 3, 4), x(1, 3, 4)], f: (a, b) => tf.sub(a, b) },
  { name: 'div broadcast', inputs: [x(2, 3, 4), positive(2, 3, 1)], f: (a, b) => tf.div(a, b) },
  { name: 'neg', inputs: [x(3, 4)], f: (a) => tf.neg(a) },
  { name: 'mean last axis, keepDims', inputs: [x(2, 3, 4)], f: (a) => tf.mean(a, -1, true) },
  { name: 'mean all', inputs: [x(2, 3, 4)], f: (a) => tf.mean(a) },
  { name: 'mean axis 0 of 1024x64', inputs: [x(1024, 64)], f: (a) => tf.mean(a, 0) },
  { name: 'sum axis 1', inputs: [x(2, 3, 4)], f: (a) => tf.sum(a, 1) },
  // wasm sums sequentially in float32: a long sum that cancels to a small result
  // drifts (1e-5 of the result at n = 2e5), so this one has no cancellation.
  { name: 'sum of 200000 positives', inputs: [positive(200000)], f: (a) => tf.sum(a) },
  { name: 'square', inputs: [x(3, 4)], f: (a) => tf.square(a) },
  { name: 'sqrt', inputs: [positive(3, 4)], f: (a) => tf.sqrt(a) },
  { name: 'rsqrt', inputs: [positive(3, 4)], f: (a) => tf.rsqrt(a) },
  { name: 'pow', inputs: [positive(3, 4)], f: (a) => tf.pow(a, 1.5) },
  { name: 'maximum', inputs: [x(3, 4), x(3, 4)], f: (a, b) => tf.maximum(a, b) },
  { name: 'minimum', inputs: [x(3, 4), x(3, 4)], f: (a, b) => tf.minimum(a, b) },
  { name: 'max', inputs: [x(3, 5)], f: (a) => tf.max(a, -1) },
  { name: 'oneHot', inputs: [ids([5], 4)], f: (i) => tf.oneHot(i as tf.Tensor1D, 4), wrt: [] },
  { name: 'cast int32 round trip', inputs: [x(3, 4)], f: (a) => tf.cast(tf.cast(a.mul(3), 'int32'), 'float32').add(a) },
  { name: 'where / select', inputs: [x(3, 4), x(3, 4), x(3, 4)], f: (c, a, b) => tf.where(tf.greater(c, 0), a, b), wrt: [1, 2] },
  {
    name: 'causal mask: where with a broadcast condition, then softmax',
    inputs: [x(2, 3, 4, 4)],
    f: (s) => {
      const causal = tf.greaterEqual(tf.range(0, 4).reshape([4, 1]), tf.range(0, 4).reshape([1, 4]));
      return tf.softmax(tf.where(causal, s, tf.fill([2, 3, 4, 4], -1e9)));
    },
  },
  { name: 'clipByValue', inputs: [x(3, 4)], f: (a) => tf.clipByValue(a, -0.5, 0.5) },
  { name: 'cos, sin (RoPE tables)', inputs: [x(3, 4)], f: (a) => tf.cos(a).add(tf.sin(a)) },
  { name: 'onesLike, zerosLike', inputs: [x(3, 4)], f: (a) => tf.onesLike(a).add(tf.zerosLike(a)).mul(a) },
  { name: 'stack', inputs: [x(3, 4), x(3, 4)], f: (a, b) => tf.stack([a, b], 1) },
  { name: 'unstack', inputs: [x(3, 4)], f: (a) => { const u = tf.unstack(a, 1); return u[0].mul(u[2]).add(u[3]); } },
  { name: 'split', inputs: [x(3, 8)], f: (a) => { const [p, q] = tf.split(a, 2, -1); return p.mul(q); } },
  { name: 'abs', inputs: [x(3, 4)], f: (a) => tf.abs(a) },
  {
    name: 'greater, less',
    inputs: [x(3, 4), x(3, 4)],
    f: (a, b) => tf.cast(tf.greater(a, b), 'float32').add(tf.cast(tf.less(a, b), 'float32').mul(2)),
    wrt: [],
  },
  { name: 'moments (LayerNorm)', inputs: [x(2, 3, 8)], f: (a) => { const m = tf.moments(a, -1, true); return m.mean.add(m.variance.mul(2)); } },
  { name: 'squaredDifference', inputs: [x(3, 4), x(3, 4)], f: (a, b) => tf.squaredDifference(a, b) },
  { name: 'expandDims, tile', inputs: [x(3, 4)], f: (a) => tf.tile(tf.expandDims(a, 0), [2, 1, 1]) },
  { name: 'broadcastTo', inputs: [x(1, 4)], f: (a) => tf.broadcastTo(a, [3, 4]) },
  {
    name: 'cross-entropy: logSoftmax · oneHot',
    inputs: [x(6, 11), ids([6], 11)],
    f: (logits, t) => tf.neg(tf.mean(tf.sum(tf.logSoftmax(logits).mul(tf.oneHot(t as tf.Tensor1D, 11)), -1))),
    wrt: [0],
  },
];


async function assertWasmMatchesCpu(c: OpCase): Promise<void> {
  const cpu = (await valueAndGrads('cpu', c)).map((r) => r.values);
  const wasm = (await valueAndGrads('wasm', c)).map((r) => r.values);
  assert.equal(wasm.length, cpu.length);
  cpu.forEach((ref, k) => {
    const what = k === 0 ? 'value' : `gradient ${k}`;
    assert.equal(wasm[k]!.length, ref.length, `${c.name}: ${what} size`);
    const err = relativeError(ref, wasm[k]!);
    assert.ok(err <= 1e-5, `${c.name}: ${what} differs from cpu by ${err.toExponential(2)}`);
  });
}

test('the wasm UnsortedSegmentSum kernel matches the cpu backend', async (t) => {
  const cases: { name: string; inputs: Input[]; numSegments: number }[] = [
    { name: 'rank-1 ids with repeats and out-of-range ids', inputs: [x(8, 3), { shape: [8], dtype: 'int32', values: (i) => [2, 0, 2, -1, 4, 7, 0, 2][i] }], numSegments: 5 },
    { name: 'int32 values', inputs: [ids([6, 2], 9), ids([6], 3)], numSegments: 3 },
    { name: '512 rows into 200 segments', inputs: [x(512, 32), ids([512], 200)], numSegments: 200 },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assertWasmMatchesCpu({
      name: c.name,
      inputs: c.inputs,
      f: (v, s) => tf.unsortedSegmentSum(v, s as tf.Tensor1D, c.numSegments),
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

test('the gradient of tf.gather (the embedding) on wasm equals cpu', async () => {
  await assertWasmMatchesCpu({ name: 'embedding gradient', inputs: [x(50, 8), ids([4, 9], 50)], f: (e, i) => tf.gather(e, i), wrt: [0] });
});

test('every model op and its gradient agree on wasm and cpu', async (t) => {
  for (const c of ops) await t.test(c.name, () => assertWasmMatchesCpu(c));
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
