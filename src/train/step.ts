// One forward/backward pass: the loss, every gradient, and (on diagnostic
// steps) the block output variances, all from the same pass.
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, type Model, splitBatch } from '../model/model.ts';
import type { Params } from '../model/norms.ts';
import { varianceTensor } from '../metrics/diagnostics.ts';

export interface Gradients {
  loss: tf.Scalar;
  grads: Record<string, tf.Tensor>;
  /** Population variance of h_1 … h_L, when asked for. */
  outputVariances?: tf.Tensor1D;
}

export function lossAndGrads(
  model: Model, params: Params, tokens: tf.Tensor2D,
  options: { outputVariances?: boolean; lossWeights?: tf.Tensor2D } = {},
): Gradients {
  const keys = Object.keys(params);
  let outputVariances: tf.Tensor1D | undefined;
  const lossOf = (...values: tf.Tensor[]): tf.Scalar => {
    const bound = Object.fromEntries(keys.map((k, i) => [k, values[i]!]));
    const { inputs, targets } = splitBatch(tokens);
    const out = model.forward(bound, inputs, { hidden: options.outputVariances });
    if (options.outputVariances) outputVariances = tf.keep(varianceTensor(out.hidden.slice(1)));
    return crossEntropy(out.logits, targets, options.lossWeights);
  };
  const { value, grads } = tf.valueAndGrads(lossOf)(keys.map((k) => params[k]!));
  return {
    loss: value as tf.Scalar,
    grads: Object.fromEntries(keys.map((k, i) => [k, grads[i]!])),
    outputVariances,
  };
}
