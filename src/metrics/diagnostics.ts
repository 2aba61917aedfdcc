// The diagnostics of MODEL.md §5. Reductions over large tensors run in the
// graph; closing formulas (norms, means over a handful of numbers, cosines)
// run in float64 on the host, as the reference cases require.
import * as tf from '@tensorflow/tfjs';
import { hasKernel, runFused } from '../model/fused.ts';
import { blockPrefix } from '../model/model.ts';

/** Σg² of every gradient, read back in one transfer. */
export function gradSquareSums(grads: Record<string, tf.Tensor>): Map<string, number> {
  const keys = Object.keys(grads);
  const tensors = keys.map((k) => grads[k]!);
  const sums = tf.tidy(() => (hasKernel('NormlabSquareSums')
    ? runFused('NormlabSquareSums', tensors)
    : tf.stack(tensors.map((g) => g.square().sum()))).dataSync());
  return new Map(keys.map((k, i) => [k, sums[i]!]));
}

export interface GradNorms {
  total: number;
  perParam: Map<string, number>;
  /** Block ℓ at index ℓ−1: the norm over every key under `model.layers.{ℓ−1}.`. */
  perLayer: number[];
}

export function gradNorms(squareSums: Map<string, number>, nLayers: number): GradNorms {
  const perLayerSq = new Array<number>(nLayers).fill(0);
  let totalSq = 0;
  const perParam = new Map<string, number>();
  // Summed in key order, not insertion order: a fresh model and one loaded from a
  // checkpoint list their parameters differently, and float addition is not associative.
  for (const key of [...squareSums.keys()].sort()) {
    const sq = squareSums.get(key)!;
    totalSq += sq;
    perParam.set(key, Math.sqrt(sq));
    for (let layer = 1; layer <= nLayers; layer++) {
      if (key.startsWith(`${blockPrefix(layer)}.`)) perLayerSq[layer - 1] += sq;
    }
  }
  return { total: Math.sqrt(totalSq), perParam, perLayer: perLayerSq.map(Math.sqrt) };
}

/** The norms of the gradient times `factor` (a summed gradient's, made a mean's). */
export function scaleNorms(norms: GradNorms, factor: number): GradNorms {
  return {
    total: norms.total * factor,
    perParam: new Map([...norms.perParam].map(([key, n]) => [key, n * factor])),
    perLayer: norms.perLayer.map((n) => n * factor),
  };
}

/** Population variance of each hidden state, as a tensor [n] (in-graph, two-pass). */
export function varianceTensor(hidden: tf.Tensor[]): tf.Tensor1D {
  return tf.tidy(() => tf.stack(hidden.map((h) => h.sub(h.mean()).square().mean())) as tf.Tensor1D);
}

export function populationVariances(hidden: tf.Tensor[]): number[] {
  const t = varianceTensor(hidden);
  const values = Array.from(t.dataSync());
  t.dispose();
  return values;
}

/** The last position's vector of every sequence: h[b, T−1] as float64 rows. */
export function lastPositions(h: tf.Tensor3D): Float64Array[] {
  const [B, T, d] = h.shape;
  const last = tf.tidy(() => h.slice([0, T - 1, 0], [B, 1, d]).dataSync());
  return Array.from({ length: B }, (_, b) => Float64Array.from(last.subarray(b * d, (b + 1) * d)));
}

/** arccos(cos_sim)/π averaged over the batch (Gromov et al.; MODEL.md §5). */
export function angularDistance(a: Float64Array[], b: Float64Array[]): number {
  let total = 0;
  for (let i = 0; i < a.length; i++) {
    let dot = 0, na = 0, nb = 0;
    for (let j = 0; j < a[i]!.length; j++) {
      dot += a[i]![j]! * b[i]![j]!;
      na += a[i]![j]! ** 2;
      nb += b[i]![j]! ** 2;
    }
    const cos = Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb)));
    total += Math.acos(cos) / Math.PI;
  }
  return total / a.length;
}

/** Mean cross-entropy in float64 from float32 logits [B, T, V]; weights mask padding. */
export function crossEntropyFloat64(logits: tf.Tensor3D, targets: Int32Array, weights?: Float32Array): number {
  const V = logits.shape[2];
  const values = logits.dataSync();
  let sum = 0, count = 0;
  for (let row = 0; row < targets.length; row++) {
    const w = weights ? weights[row]! : 1;
    if (w === 0) continue;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, values[row * V + v]!);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(values[row * V + v]! - max);
    sum += w * (Math.log(s) + max - values[row * V + targets[row]!]!);
    count += w;
  }
  return sum / count;
}
