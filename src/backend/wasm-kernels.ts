// Kernels that @tensorflow/tfjs-backend-wasm 4.22 lacks, registered through
// tfjs's public kernel registry. Each is a plain JS loop over the wasm heap.

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

const kernels: Record<string, (args: KernelArgs) => tf.TensorInfo> = {
  UnsortedSegmentSum: unsortedSegmentSum,
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
  registered = true;
}
