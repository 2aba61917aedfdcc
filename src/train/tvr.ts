// Target variance rescaling (MODEL.md §7.10; Owen et al. 2025): every
// `tvr_interval` steps, block matrices whose std exceeds the target by more
// than `tvr_threshold` are rescaled to the target std around their mean.
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../model/config.ts';
import type { Params } from '../model/norms.ts';

const BLOCK_MATRIX = /^model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/** Mean and Bessel-corrected std (Tensor.std()) in float64. */
export function meanAndStd(values: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  const mean = sum / values.length;
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += (values[i]! - mean) ** 2;
  return { mean, std: Math.sqrt(sq / (values.length - 1)) };
}

/** (W − μ)/s · σ_t + μ in float64. */
export function rescaleToStd(values: ArrayLike<number>, target: number): Float64Array {
  const { mean, std } = meanAndStd(values);
  return Float64Array.from(values, (v) => ((v - mean) / std) * target + mean);
}

export function tvrTarget(cfg: ModelConfig, layer: number): number {
  return cfg.tvr_target_std / (cfg.tvr_scale_with_depth ? Math.sqrt(layer) : 1);
}

/** Applies TVR after optimizer step `step` (1-based) when it is due; returns the keys it rescaled. */
export function applyTvr(cfg: ModelConfig, params: Params, step: number): string[] {
  if (!cfg.tvr || step % cfg.tvr_interval !== 0) return [];
  const rescaled: string[] = [];
  for (const [key, w] of Object.entries(params)) {
    const match = BLOCK_MATRIX.exec(key);
    if (!match) continue;
    const target = tvrTarget(cfg, Number(match[1]) + 1);
    const values = w.dataSync();
    if (meanAndStd(values).std / target <= cfg.tvr_threshold) continue;
    params[key] = tf.tensor(Float32Array.from(rescaleToStd(values, target)), w.shape);
    w.dispose();
    rescaled.push(key);
  }
  return rescaled;
}
