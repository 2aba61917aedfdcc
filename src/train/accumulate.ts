// A gradient step over micro-batches, token-weighted (TEAM design): each
// micro-batch m gives the gradient of its loss SUM over real (non-pad) target
// tokens; the step adds them up, G = Σ grad(loss_sum_m), with S = Σ loss_sum_m
// and N = Σ n_m, hands (G, S, N) to the reduction hook, and the gradient is
// G / N, the loss S / N: exactly the mean over the whole batch, however the
// padding falls between micro-batches (or processes).
import * as tf from '@tensorflow/tfjs';
import type { Replica } from '../distributed/replica.ts';
import type { Model } from '../model/model.ts';
import type { Params } from '../model/norms.ts';
import { lossAndGrads } from './step.ts';

/** What the micro-batches of one step add up to (in one process, or over all of them after the reduction). */
export interface StepSums {
  /** G: Σ over micro-batches of the gradient of loss_sum_m, one tensor per parameter key. */
  grads: Record<string, tf.Tensor>;
  /** S: Σ of the cross-entropy over real target tokens, a scalar tensor (left on the device). */
  lossSum: tf.Scalar;
  /** N: the real target tokens counted (known on the host, from the batch's weights). */
  tokens: number;
}

/**
 * The reduction hook: this process's sums in, the global sums out. It owns the
 * tensors it is given; those it returns (the same objects, or new ones after
 * disposing the old) belong to the caller.
 *
 * One process: `singleProcess`, the identity. Data parallel (TrainContext.replica,
 * src/distributed): `sumOverRanks`, an all-reduce SUM of [G…, S, N] over c10d.
 */
export type GradientReduction = (local: StepSums) => StepSums;

export const singleProcess: GradientReduction = (local) => local;

export function sumOverRanks(replica: Replica): GradientReduction {
  return (local) => {
    const keys = Object.keys(local.grads);
    const count = tf.scalar(local.tokens); // exact in float32 up to 2^24 tokens per step
    const summed = replica.allReduce([...keys.map((k) => local.grads[k]!), local.lossSum, count]);
    tf.dispose([...Object.values(local.grads), local.lossSum, count]);
    const total = summed.pop()!;
    const tokens = total.dataSync()[0]!;
    total.dispose();
    return { grads: Object.fromEntries(keys.map((k, i) => [k, summed[i]!])), lossSum: summed[keys.length] as tf.Scalar, tokens };
  };
}

/** One micro-batch as the host holds it: rows [b, T+1] and, under truncate batching, their loss weights [b, T]. */
export interface HostBatch {
  tokens: Int32Array;
  weights?: Float32Array;
  rows: number;
  seqLen: number;
}

/** The `parts` equal micro-batches of a batch (views of its arrays, no copy). */
export function splitBatch(batch: HostBatch, parts: number): HostBatch[] {
  const rows = batch.rows / parts, T = batch.seqLen;
  return Array.from({ length: parts }, (_, i) => ({
    rows, seqLen: T,
    tokens: batch.tokens.subarray(i * rows * (T + 1), (i + 1) * rows * (T + 1)),
    weights: batch.weights?.subarray(i * rows * T, (i + 1) * rows * T),
  }));
}

/** Real target tokens of a micro-batch: its weights' sum (0/1), or every target. */
export function realTokens(batch: HostBatch): number {
  if (!batch.weights) return batch.rows * batch.seqLen;
  let n = 0;
  for (const w of batch.weights) n += w;
  return n;
}

/** Per-layer output variance of the whole batch from the micro-batches' means and variances (equal sizes), in float64. */
export function pooledVariances(means: Float32Array[], variances: Float32Array[]): number[] {
  const k = means.length;
  return Array.from(means[0]!, (_, l) => {
    let mean = 0, within = 0;
    for (let m = 0; m < k; m++) { mean += means[m]![l]! / k; within += variances[m]![l]! / k; }
    let between = 0;
    for (let m = 0; m < k; m++) between += (means[m]![l]! - mean) ** 2 / k;
    return within + between;
  });
}

export interface AccumulatedStep extends StepSums {
  /** Population variance of h_1 … h_L over the whole batch, when asked for. */
  outputVariances?: number[];
}

/** Forward and backward over each micro-batch, summing gradients and loss sums (this process's share). */
export function accumulateGradients(model: Model, params: Params, microBatches: HostBatch[], diagnostics: boolean): AccumulatedStep {
  let grads: Record<string, tf.Tensor> | undefined;
  let lossSum: tf.Scalar | undefined;
  let tokens = 0;
  const means: Float32Array[] = [], variances: Float32Array[] = [];
  for (const mb of microBatches) {
    const input = tf.tensor2d(mb.tokens, [mb.rows, mb.seqLen + 1], 'int32');
    const weights = mb.weights && tf.tensor2d(mb.weights, [mb.rows, mb.seqLen]);
    const step = lossAndGrads(model, params, input, { lossSum: true, lossWeights: weights, outputVariances: diagnostics, outputMeans: diagnostics });
    tf.dispose([input, ...(weights ? [weights] : [])]);
    if (step.outputVariances) {
      variances.push(step.outputVariances.dataSync() as Float32Array);
      means.push(step.outputMeans!.dataSync() as Float32Array);
      tf.dispose([step.outputVariances, step.outputMeans!]);
    }
    tokens += realTokens(mb);
    lossSum = lossSum ? addInto(lossSum, step.loss) : step.loss;
    if (!grads) {
      grads = step.grads;
      continue;
    }
    for (const key of Object.keys(grads)) grads[key] = addInto(grads[key]!, step.grads[key]!);
  }
  return { grads: grads!, lossSum: lossSum!, tokens, ...(diagnostics && { outputVariances: pooledVariances(means, variances) }) };
}

/** a + b, both disposed. */
function addInto<T extends tf.Tensor>(a: T, b: T): T {
  const sum = tf.add(a, b) as T;
  tf.dispose([a, b]);
  return sum;
}
