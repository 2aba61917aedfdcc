// `normlab analyze`'s analyses as rows for the store: each takes the model,
// its parameters and a validation batch, and returns what it measured.
import * as tf from '@tensorflow/tfjs';
import type { Model } from '../model/model.ts';
import type { Params } from '../model/norms.ts';
import { type Batch, type ForwardAnalysis, layerDrop } from '../metrics/analysis.ts';
import { gradNorms, gradSquareSums } from '../metrics/diagnostics.ts';
import { lossAndGrads } from '../train/step.ts';
import { type AnalysisRow, row } from '../store/analyses.ts';
import type { AnalysisName } from './names.ts';

export { ANALYSES, type AnalysisName } from './names.ts';

/** The analyses that need only the forward pass already taken: cheap enough to run during training. */
export const CHEAP_ANALYSES = ['angular', 'variance', 'massive', 'cosine'] as const;

export interface AnalysisInput {
  model: Model;
  params: Params;
  batch: Batch;
  /** Token ids [B, T+1] of the same batch, for gradients. */
  tokens: tf.Tensor2D;
  forward: ForwardAnalysis;
}

type Rows = Record<string, AnalysisRow[]>;

const fromForward: Record<(typeof CHEAP_ANALYSES)[number], (forward: ForwardAnalysis) => Rows> = {
  angular: (forward) => ({
    angular: forward.angular.flatMap((pairs, n) => pairs.map((v, i) => row(i, v, { n: n + 1 }))),
  }),
  variance: (forward) => ({ variance: forward.hiddenVar.map((v, layer) => row(layer, v)) }),
  massive: (forward) => ({ max_abs: forward.maxAbs.map((v, i) => row(i + 1, v)) }),
  cosine: (forward) => ({ cosine: forward.cosine.map((v, i) => row(i + 1, v)) }),
};

/** The rows of every cheap analysis, from one forward pass (training's `analyze_every`). */
export function cheapAnalysisRows(forward: ForwardAnalysis): Rows {
  return Object.assign({}, ...CHEAP_ANALYSES.map((name) => fromForward[name](forward)));
}

/** Each analysis writes one or more named row sets. */
export const analyses: Record<AnalysisName, (input: AnalysisInput) => Rows> = {
  angular: ({ forward }) => fromForward.angular(forward),
  variance: ({ forward }) => fromForward.variance(forward),
  massive: ({ forward }) => fromForward.massive(forward),
  cosine: ({ forward }) => fromForward.cosine(forward),
  'layer-drop': ({ model, params, batch, forward }) => {
    const deltas = layerDrop(model, params, batch, forward.loss);
    return {
      loss: [row(0, forward.loss)],
      layer_drop: deltas.map((d, i) => row(i + 1, d)),
      layer_drop_ppl: deltas.map((d, i) => row(i + 1, Math.exp(forward.loss + d))),
    };
  },
  gradnorm: ({ model, params, batch, tokens }) => {
    const [B, T] = batch.inputs.shape;
    const lossWeights = batch.weights && tf.tensor2d(batch.weights, [B, T]);
    const { loss, grads } = lossAndGrads(model, params, tokens, lossWeights && { lossWeights });
    const norms = gradNorms(gradSquareSums(grads), model.cfg.n_layers);
    tf.dispose([loss, ...Object.values(grads), ...(lossWeights ? [lossWeights] : [])]);
    return {
      gradnorm: norms.perLayer.map((v, i) => row(i + 1, v)),
      param_gradnorm: [...norms.perParam].map(([param, v]) => row(0, v, { param })),
    };
  },
};
