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

const kernels: Record<string, (args: KernelArgs) => tf.TensorInfo> = {
  UnsortedSegmentSum: unsortedSegmentSum,
};

/** Registers the kernels above for 'wasm'; idempotent, so callers need not track it. */
export function registerWasmKernels(): void {
  for (const [kernelName, kernelFunc] of Object.entries(kernels)) {
    if (tf.getKernel(kernelName, 'wasm') !== undefined) continue;
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}
