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

/** The analyses of one forward pass; `withLogits` also returns every logit (reference cases only: B·T·V floats). */
export function forwardAnalysis(model: Model, params: Params, batch: Batch, withLogits = false): ForwardAnalysis & { logits?: Float32Array } {
  return tf.tidy(() => {
    const { logits, hidden } = model.forward(params, batch.inputs, { hidden: true });
    const hiddenVar = Array.from(varianceTensor(hidden).dataSync());
    const last = hidden.map(lastPositions);
    const L = hidden.length - 1;
    const angular = Array.from({ length: L }, (_, n) =>
      Array.from({ length: L - n }, (__, i) => angularDistance(last[i]!, last[i + n + 1]!)));
    return {
      loss: crossEntropyFloat64(logits, batch.targets),
      hiddenVar,
      ...blockStats(hidden),
      angular,
      logits: withLogits ? (logits.dataSync() as Float32Array) : undefined,
    };
  });
}

/** Loss increase when block ℓ is the identity, each block in turn (MODEL.md §5). */
export function layerDrop(model: Model, params: Params, batch: Batch, baseLoss: number): number[] {
  return Array.from({ length: model.cfg.n_layers }, (_, i) => tf.tidy(() => {
    const { logits } = model.forward(params, batch.inputs, { skipLayer: i + 1 });
    return crossEntropyFloat64(logits, batch.targets) - baseLoss;
  }));
}
