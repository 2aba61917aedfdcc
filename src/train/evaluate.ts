// Validation loss as a token-weighted mean over every evaluation batch (the
// papers' code divides by n+1 batches and ignores token counts; PAPERS.md).
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, type Model, splitBatch } from '../model/model.ts';
import type { Params } from '../model/norms.ts';

export interface Validation {
  loss: number;
  perplexity: number;
  tokens: number;
}

/** `weights[i]` (0 on padding) makes batch i count only its real targets, in its mean and in the total. */
export function evaluate(model: Model, params: Params, batches: tf.Tensor2D[], weights?: tf.Tensor2D[]): Validation {
  let lossSum = 0, tokens = 0;
  for (const [i, batch] of batches.entries()) {
    const w = weights?.[i];
    const n = w ? tf.tidy(() => w.sum().dataSync()[0]!) : batch.shape[0] * (batch.shape[1] - 1);
    const loss = tf.tidy(() => {
      const { inputs, targets } = splitBatch(batch);
      return crossEntropy(model.forward(params, inputs).logits, targets, w).dataSync()[0]!;
    });
    lossSum += loss * n;
    tokens += n;
  }
  const loss = lossSum / tokens;
  return { loss, perplexity: Math.exp(loss), tokens };
}
