// Kernels that @tensorflow/tfjs-backend-wasm 4.22 lacks or runs slowly,
// registered through tfjs's public kernel registry.

import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type KernelArgs = {
  inputs: Record<string, tf.TensorInfo>;
  attrs?: Record<string, unknown>;
  backend: BackendWasm;
};

/**
 * UnsortedSegmentSum: out[s, ...] = Σ x[j, ...] over the j with segmentIds[j] = s.
 * It is the gradient of tf.gather, so the embedding cannot learn without it.
 * Ids outside [0, numSegments) are dropped, as in TensorFlow and tfjs's cpu kernel.
 */
function unsortedSegmentSum({ inputs, attrs, backend }: KernelArgs): tf.TensorInfo {
  const { x, segmentIds } = inputs;
  const numSegments = attrs!.numSegments as number;
  const inner = tf.util.sizeFromShape(x.shape.slice(segmentIds.shape.length));
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
  // Views are taken after makeOutput: a malloc that grows the heap detaches older views.
  const sums = backend.typedArrayFromHeap(out);
  const values = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(segmentIds);
  sums.fill(0);
  for (let j = 0; j < ids.length; j++) {
    const s = ids[j];
    if (s < 0 || s >= numSegments) continue;
    for (let k = 0; k < inner; k++) sums[s * inner + k] += values[j * inner + k];
  }
  return out;
}

/**
 * An elementwise kernel computed in float64 and rounded once. The shipped
 * wasm kernels for these ops use XNNPACK's fast approximations (errors of a
 * few ulp), which Adam's second step amplifies past the reference tolerance
 * on the `peri` case (MODEL.md §6); these are correctly rounded instead.
 */
function accurateUnary(f: (x: number) => number) {
  return ({ inputs, backend }: KernelArgs): tf.TensorInfo => {
    const { x } = inputs;
    const out = backend.makeOutput(x.shape, 'float32');
    const y = backend.typedArrayFromHeap(out);
    const values = backend.typedArrayFromHeap(x);
    for (let i = 0; i < values.length; i++) y[i] = f(values[i]);
    return out;
  };
}

/** Softmax over the last axis with a float64 row sum (tfjs only allows the last axis). */
function accurateSoftmax({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { logits } = inputs;
  const n = logits.shape[logits.shape.length - 1]!;
  const out = backend.makeOutput(logits.shape, 'float32');
  const y = backend.typedArrayFromHeap(out);
  const x = backend.typedArrayFromHeap(logits);
  const row = new Float64Array(n);
  for (let start = 0; start < x.length; start += n) {
    let max = -Infinity;
    for (let j = 0; j < n; j++) max = Math.max(max, x[start + j]);
    let sum = 0;
    for (let j = 0; j < n; j++) sum += (row[j] = Math.exp(x[start + j] - max));
    for (let j = 0; j < n; j++) y[start + j] = row[j]! / sum;
  }
  return out;
}

/**
 * BatchMatMul with transposed operands: the shipped kernel multiplies those in
 * a naive loop, 10-20× slower than its XNNPACK path for plain operands (every
 * linear layer's weight, every weight gradient). The transposed operand is
 * copied into row-major order first; the copy costs a fraction of the product.
 */
function transposingBatchMatMul(plain: tf.KernelFunc, transpose: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { inputs, attrs, backend } = args;
    const swapLastAxes = (t: tf.TensorInfo): tf.TensorInfo => {
      const perm = t.shape.map((_, i) => i);
      [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1]!, perm[perm.length - 2]!];
      return transpose({ inputs: { x: t }, attrs: { perm }, backend }) as tf.TensorInfo;
    };
    const a = attrs!.transposeA ? swapLastAxes(inputs.a!) : inputs.a!;
    const b = attrs!.transposeB ? swapLastAxes(inputs.b!) : inputs.b!;
    const out = productByBatch(plain, a, b, backend);
    if (a !== inputs.a) backend.disposeData(a.dataId);
    if (b !== inputs.b) backend.disposeData(b.dataId);
    return out;
  };
}

/**
 * a·b of row-major operands one batch entry at a time (batch dims broadcast):
 * the shipped kernel is fast only for a single product (attention's
 * [B, H, T, ·] products ran at about 1 GFLOP/s).
 */
function productByBatch(plain: tf.KernelFunc, a: tf.TensorInfo, b: tf.TensorInfo, backend: BackendWasm): tf.TensorInfo {
  const attrs = { transposeA: false, transposeB: false };
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2)), batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  if (Math.max(batchA, batchB) === 1) return plain({ inputs: { a, b }, attrs, backend }) as tf.TensorInfo;
  const [m, k] = a.shape.slice(-2) as [number, number];
  const n = b.shape[b.shape.length - 1]!;
  const batchShape = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = backend.makeOutput([...batchShape, m, n], 'float32');
  // Entry i as its own tensor; an operand with one entry (broadcast) is used as it is.
  // Heap views are taken after each allocation, which may move the heap.
  const entry = (t: tf.TensorInfo, batch: number, i: number, shape: number[]) => {
    if (batch === 1) return t;
    const size = shape[1]! * shape[2]!;
    const copy = backend.makeOutput(shape, 'float32');
    backend.typedArrayFromHeap(copy).set(backend.typedArrayFromHeap(t).subarray(i * size, (i + 1) * size));
    return copy;
  };
  for (let i = 0; i < tf.util.sizeFromShape(batchShape); i++) {
    const ai = entry(a, batchA, i, [1, m, k]);
    const bi = entry(b, batchB, i, [1, k, n]);
    const product = plain({ inputs: { a: ai, b: bi }, attrs, backend }) as tf.TensorInfo;
    backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(product), i * m * n);
    for (const t of [ai, bi, product]) if (t !== a && t !== b) backend.disposeData(t.dataId);
  }
  return out;
}

/** Identity sharing its input's data (tensors are immutable); the shipped kernel copies it. */
function sharedIdentity({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { x } = inputs;
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

const kernels: Record<string, (args: KernelArgs) => tf.TensorInfo> = {
  UnsortedSegmentSum: unsortedSegmentSum,
  Identity: sharedIdentity,
  Exp: accurateUnary(Math.exp),
  Log: accurateUnary(Math.log),
  Sigmoid: accurateUnary((x) => 1 / (1 + Math.exp(-x))),
  Tanh: accurateUnary(Math.tanh),
  Rsqrt: accurateUnary((x) => 1 / Math.sqrt(x)),
  Softmax: accurateSoftmax,
};

let registered = false;

/** Registers (or replaces) the kernels above for 'wasm'; idempotent, so callers need not track it. */
export function registerWasmKernels(): void {
  if (registered) return;
  for (const [kernelName, kernelFunc] of Object.entries(kernels)) {
    if (tf.getKernel(kernelName, 'wasm') !== undefined) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
  // The shipped kernel stays in use for plain operands; its setup (a wasm binding) is kept.
  const shipped = tf.getKernel('BatchMatMul', 'wasm')!;
  const wrapped = transposingBatchMatMul(shipped.kernelFunc, tf.getKernel('Transpose', 'wasm')!.kernelFunc);
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ ...shipped, kernelFunc: wrapped as unknown as tf.KernelFunc });
  registered = true;
}
