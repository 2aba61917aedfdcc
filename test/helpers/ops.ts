import assert from 'node:assert/strict';
// One op and its gradient on a chosen backend, for the backend suites that
// compare a backend's kernels against tfjs's cpu backend.
import * as tf from '@tensorflow/tfjs';
import { type BackendName, useBackend } from '../../src/backend/index.ts';
import { Rng } from '../../src/data/rng.ts';

export type Input = { shape: number[]; dtype?: 'float32' | 'int32'; values?: (i: number) => number };
export interface OpCase {
  name: string;
  inputs: Input[];
  f: (...xs: tf.Tensor[]) => tf.Tensor;
  /** Inputs to differentiate (default: all); [] for ops without a gradient. */
  wrt?: number[];
}

export const x = (...shape: number[]): Input => ({ shape });
export const positive = (...shape: number[]): Input => ({ shape, values: (i) => 0.5 + ((i * 0.37) % 1) });
export const ids = (shape: number[], n: number): Input => ({ shape, dtype: 'int32', values: (i) => (i * 7 + 3) % n });

export function makeInputs(inputs: Input[]): tf.Tensor[] {
  const rng = new Rng(2024);
  return inputs.map(({ shape, dtype = 'float32', values }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return tf.tensor(Array.from({ length: n }, (_, i) => (values ? values(i) : rng.nextFloat() * 2 - 1)), shape, dtype);
  });
}

/** The op's value and the gradients of Σ w·f(xs) (random w: with w = 1, softmax's gradient is 0). */
export async function valueAndGrads(backend: BackendName, c: OpCase): Promise<{ dtype: string; shape: number[]; values: Float32Array }[]> {
  await useBackend(backend);
  const xs = makeInputs(c.inputs);
  const y = c.f(...xs);
  const [w] = makeInputs([{ shape: y.shape }]);
  const wrt = c.wrt ?? xs.map((_, i) => i);
  const withArgs = (args: tf.Tensor[]) => xs.map((t, i) => (wrt.includes(i) ? args[wrt.indexOf(i)]! : t));
  const grads = wrt.length === 0 ? [] : tf.grads((...args: tf.Tensor[]) => c.f(...withArgs(args)).mul(w!).sum())(wrt.map((i) => xs[i]!));
  const out = await Promise.all([y, ...grads].map(async (t) => ({ dtype: t.dtype, shape: t.shape, values: Float32Array.from(await t.data()) })));
  tf.dispose([...xs, y, w!, ...grads]);
  return out;
}

/** max |a − b| relative to max |a| (or absolute when a is all zeros). */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return diff / (scale || 1);
}

/** Every op the model, its loss and its optimizer use (MODEL.md §1–§3), each with its gradient: each backend suite runs them against cpu. */
export const MODEL_OPS: OpCase[] = [
  { name: 'matMul', inputs: [x(3, 4), x(4, 5)], f: (a, b) => tf.matMul(a, b) },
  { name: 'matMul transposeA', inputs: [x(4, 3), x(4, 5)], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'matMul transposeB', inputs: [x(3, 4), x(5, 4)], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'matMul transposeA+B', inputs: [x(4, 3), x(5, 4)], f: (a, b) => tf.matMul(a, b, true, true) },
  { name: 'matMul 128x256 · 384x256ᵀ', inputs: [x(128, 256), x(384, 256)], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'batchMatMul rank 3', inputs: [x(2, 3, 4), x(2, 4, 5)], f: (a, b) => tf.matMul(a, b) },
  { name: 'batchMatMul rank 3 transposeA', inputs: [x(2, 4, 3), x(2, 4, 5)], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'batchMatMul broadcast batch (tfjs has no gradient for it)', inputs: [x(1, 3, 4), x(2, 4, 5)], f: (a, b) => tf.matMul(a, b), wrt: [] },
  { name: 'batchMatMul rank 4, transposeA and transposeB', inputs: [x(2, 3, 4, 6), x(2, 3, 5, 4)], f: (a, b) => tf.matMul(a, b, true, true) },
  { name: 'batchMatMul rank 4 (attention scores), transposeB', inputs: [x(2, 3, 6, 4), x(2, 3, 6, 4)], f: (q, k) => tf.matMul(q, k, false, true) },
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

/** The op's value and gradients on `backend` equal cpu's within `tolerance` (relative to the largest |value|). */
export async function assertMatchesCpu(backend: BackendName, c: OpCase, tolerance = 1e-5): Promise<void> {
  const cpu = await valueAndGrads('cpu', c);
  const got = await valueAndGrads(backend, c);
  assert.equal(got.length, cpu.length, `${c.name}: number of outputs`);
  cpu.forEach((ref, k) => {
    const what = k === 0 ? 'value' : `gradient ${k}`;
    assert.deepEqual({ dtype: got[k]!.dtype, shape: got[k]!.shape }, { dtype: ref.dtype, shape: ref.shape }, `${c.name}: ${what}`);
    const err = relativeError(ref.values, got[k]!.values);
    assert.ok(err <= tolerance, `${c.name}: ${what} on ${backend} differs from cpu by ${err.toExponential(2)}`);
  });
}
