// Initialization of MODEL.md §3: N(0, σ²) matrices and embeddings, unit norm
// gains, zero biases, DyT α at its init, and DeepNet's β on the value, output
// and FFN matrices for `deepnorm`. Drawn with normlab's own seeded generator
// so a seed gives the same weights on every backend.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../data/rng.ts';
import type { ModelConfig } from './config.ts';
import { parameterShapes } from './model.ts';
import type { Params } from './norms.ts';

/** DeepNet's decoder-only β = (8L)^(−1/4) for the matrices it scales. */
const DEEPNORM_SCALED = /\.(self_attn\.[vo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

function initialValue(cfg: ModelConfig, key: string, shape: number[], rng: Rng): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  if (shape.length >= 2) {
    const beta = cfg.norm === 'deepnorm' && DEEPNORM_SCALED.test(key) ? Math.pow(8 * cfg.n_layers, -0.25) : 1;
    const std = cfg.init_std * beta;
    for (let i = 0; i < size; i++) out[i] = rng.normal() * std;
  } else if (key.endsWith('.alpha')) {
    out.fill(cfg.dyt_alpha_init);
  } else if (key.endsWith('.weight')) {
    out.fill(1);
  }
  return out;
}

export function initParams(cfg: ModelConfig, seed: number): Params {
  const rng = new Rng(seed);
  const params: Params = {};
  for (const [key, shape] of parameterShapes(cfg)) params[key] = tf.tensor(initialValue(cfg, key, shape, rng), shape);
  return params;
}
