// The layer analyses of the seed papers (MODEL.md §5; issue "normlab analyze"):
// per-block output variance, massive activations, input/output cosine,
// angular distance between every pair of hidden states, and layer drop.
// `normlab verify` checks the reference quantities through these same functions.
import * as tf from '@tensorflow/tfjs';
import type { Model } from '../model/model.ts';
import type { Params } from '../model/norms.ts';
import { angularDistance, crossEntropyFloat64, lastPositions, varianceTensor } from './diagnostics.ts';

export interface ForwardAnalysis {
  /** Mean cross-entropy of the batch, float64. */
  loss: number;
  /** Population variance of h_0 … h_L. */
  hiddenVar: number[];
  /** max |h_ℓ| of blocks 1…L ("massive activations", Peri-LN). */
  maxAbs: number[];
  /** Mean over positions of cos(h_{ℓ−1}, h_ℓ), blocks 1…L. */
  cosine: number[];
  /** angular[n−1][i] = angular distance between h_i and h_{i+n} (Gromov et al.), n = 1…L. */
  angular: number[][];
}

export interface Batch {
  inputs: tf.Tensor2D;
  targets: Int32Array;
  /**
   * Loss weights [B·T] of the targets, 0 on padding (truncate batching); absent: every target is real.
   * The analyses cover the positions whose target is real: a row's last real token is its last such position.
   */
  weights?: Float32Array;
}

/** Splits a [B, T+1] token array into the model's inputs and the flat targets. */
export function batchOf(tokens: number[][] | Int32Array, rows?: number): Batch {
  const matrix = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens.flat());
  const B = rows ?? (tokens as number[][]).length;
  const T1 = matrix.length / B;
  const inputs = tf.tidy(() => tf.tensor2d(matrix, [B, T1], 'int32').slice([0, 0], [B, T1 - 1]));
  const targets = new Int32Array(B * (T1 - 1));
  for (let b = 0; b < B; b++) targets.set(matrix.subarray(b * T1 + 1, (b + 1) * T1), b * (T1 - 1));
  return { inputs, targets };
}

/** Flat indices (b·T + t) of the positions whose target is real; undefined when every one is. */
function realPositions(weights: Float32Array | undefined): Int32Array | undefined {
  if (!weights || weights.every((w) => w > 0)) return undefined;
  return Int32Array.from(weights.keys()).filter((i) => weights[i]! > 0);
}

/** Each row's last real position (−1 for a row with none). */
function lastRealPositions(weights: Float32Array | undefined, B: number, T: number): number[] {
  return Array.from({ length: B }, (_, b) => {
    if (!weights) return T - 1;
    let t = T - 1;
    while (t >= 0 && !(weights[b * T + t]! > 0)) t--;
    return t;
  });
}

/** h as [positions, d] over the real positions only. */
function realRows(h: tf.Tensor, real: Int32Array | undefined): tf.Tensor2D {
  const d = h.shape.at(-1)!;
  const flat = h.reshape([-1, d]) as tf.Tensor2D;
  return real ? tf.gather(flat, real) : flat;
}

function blockStats(hidden: tf.Tensor[]): { maxAbs: number[]; cosine: number[] } {
  return tf.tidy(() => {
    const L = hidden.length - 1;
    const maxAbs = hidden.slice(1).map((h) => h.abs().max());
    const cosine = hidden.slice(1).map((h, i) => {
      const x = hidden[i]!;
      return x.mul(h).sum(-1).div(x.square().sum(-1).sqrt().mul(h.square().sum(-1).sqrt())).mean();
    });
    const values = tf.stack([...maxAbs, ...cosine]).dataSync();
    return { maxAbs: Array.from(values.subarray(0, L)), cosine: Array.from(values.subarray(L)) };
  });
}

/** Each row's hidden state at its last real position, as float64 (rows with none left out). */
function lastRealVectors(h: tf.Tensor3D, last: number[]): Float64Array[] {
  const [B, T, d] = h.shape;
  if (last.every((t) => t === T - 1)) return lastPositions(h);
  const rows = last.flatMap((t, b) => (t >= 0 ? [b * T + t] : []));
  const values = tf.tidy(() => tf.gather(h.reshape([B * T, d]), rows).dataSync());
  return rows.map((_, k) => Float64Array.from(values.subarray(k * d, (k + 1) * d)));
}

/** The analyses of one forward pass; `withLogits` also returns every logit (reference cases only: B·T·V floats). */
export function forwardAnalysis(model: Model, params: Params, batch: Batch, withLogits = false): ForwardAnalysis & { logits?: Float32Array } {
  return tf.tidy(() => {
    const { logits, hidden } = model.forward(params, batch.inputs, { hidden: true });
    const [B, T] = batch.inputs.shape;
    const real = realPositions(batch.weights);
    // Padding is neither in the statistics nor in the loss; the pads' own states are left out.
    const states = real ? hidden.map((h) => realRows(h, real)) : hidden;
    const hiddenVar = Array.from(varianceTensor(states).dataSync());
    const lastReal = lastRealPositions(batch.weights, B, T);
    const last = hidden.map((h) => lastRealVectors(h as tf.Tensor3D, lastReal));
    const L = hidden.length - 1;
    const angular = Array.from({ length: L }, (_, n) =>
      Array.from({ length: L - n }, (__, i) => angularDistance(last[i]!, last[i + n + 1]!)));
    return {
      loss: crossEntropyFloat64(logits, batch.targets, batch.weights),
      hiddenVar,
      ...blockStats(states),
      angular,
      logits: withLogits ? (logits.dataSync() as Float32Array) : undefined,
    };
  });
}

/** Loss increase when block ℓ is the identity, each block in turn (MODEL.md §5). */
export function layerDrop(model: Model, params: Params, batch: Batch, baseLoss: number): number[] {
  return Array.from({ length: model.cfg.n_layers }, (_, i) => tf.tidy(() => {
    const { logits } = model.forward(params, batch.inputs, { skipLayer: i + 1 });
    return crossEntropyFloat64(logits, batch.targets, batch.weights) - baseLoss;
  }));
}
