// One forward/backward pass: the loss, every gradient, and (on diagnostic
// steps) the block output variances, all from the same pass.
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, crossEntropySum, type Model, splitBatch } from '../model/model.ts';
import type { Params } from '../model/norms.ts';
import { varianceTensor } from '../metrics/diagnostics.ts';

export interface Gradients {
  loss: tf.Scalar;
  grads: Record<string, tf.Tensor>;
  /** Population variance of h_1 … h_L, when asked for. */
  outputVariances?: tf.Tensor1D;
  /** Mean of h_1 … h_L, with the variances: micro-batches' variances combine through their means. */
  outputMeans?: tf.Tensor1D;
}

export interface StepOptions {
  outputVariances?: boolean;
  /** With outputVariances: the means too. */
  outputMeans?: boolean;
  lossWeights?: tf.Tensor2D;
  /** The loss is the sum over the counted targets (gradient accumulation), not their mean. */
  lossSum?: boolean;
}

export function lossAndGrads(model: Model, params: Params, tokens: tf.Tensor2D, options: StepOptions = {}): Gradients {
  const keys = Object.keys(params);
  let outputVariances: tf.Tensor1D | undefined;
  let outputMeans: tf.Tensor1D | undefined;
  const lossOf = (...values: tf.Tensor[]): tf.Scalar => {
    const bound = Object.fromEntries(keys.map((k, i) => [k, values[i]!]));
    const { inputs, targets } = splitBatch(tokens);
    const out = model.forward(bound, inputs, { hidden: options.outputVariances });
    if (options.outputVariances) {
      const hidden = out.hidden.slice(1);
      outputVariances = tf.keep(varianceTensor(hidden));
      if (options.outputMeans) outputMeans = tf.keep(tf.stack(hidden.map((h) => h.mean())) as tf.Tensor1D);
    }
    return (options.lossSum ? crossEntropySum : crossEntropy)(out.logits, targets, options.lossWeights);
  };
  const { value, grads } = tf.valueAndGrads(lossOf)(keys.map((k) => params[k]!));
  return {
    loss: value as tf.Scalar,
    grads: Object.fromEntries(keys.map((k, i) => [k, grads[i]!])),
    outputVariances,
    outputMeans,
  };
}
