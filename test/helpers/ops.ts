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
