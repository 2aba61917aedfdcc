// nGPT's sub-layers, head and weight renormalization (MODEL.md §7.3; NVIDIA/ngpt
// `model.py` with use_nGPT=1). Effective scales are `stored · init_value / init_scaling`.
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.ts';
import { causalAttention, type KvAppend, linear, mergeHeads, rope, type RopeTables, splitHeads, withCache } from './layers.ts';
import { type Params, unit } from './norms.ts';

export function ngptAttention(x: tf.Tensor, params: Params, prefix: string, cfg: ModelConfig, tables: RopeTables, mask: tf.Tensor2D, cache?: KvAppend): tf.Tensor {
  const { n_heads: H, d_model: d } = cfg;
  const hd = d / H;
  const heads = (name: string) => splitHeads(linear(x, params[`${prefix}.${name}_proj.weight`]!), H);
  const sqk = params[`${prefix}.qk_scale`]!.mul(Math.sqrt(d)).reshape([1, H, 1, hd]);
  // RoPE before the normalization, as the code does (§7.3 note 1).
  const q = unit(rope(heads('q'), tables)).mul(sqk);
  const [k, v] = withCache(unit(rope(heads('k'), tables)).mul(sqk), heads('v'), cache);
  // Unit q, k: the logit scale is sqrt(hd), not 1/sqrt(hd).
  const o = causalAttention(q, k, v, Math.sqrt(hd), mask);
  return linear(mergeHeads(o), params[`${prefix}.o_proj.weight`]!);
}

export function ngptFfn(u: tf.Tensor, params: Params, prefix: string, cfg: ModelConfig): tf.Tensor {
  const s = Math.sqrt(cfg.d_model);
  const up = linear(u, params[`${prefix}.up_proj.weight`]!).mul(params[`${prefix}.up_scale`]!.mul(s));
  const gate = linear(u, params[`${prefix}.gate_proj.weight`]!).mul(params[`${prefix}.gate_scale`]!.mul(s));
  return linear(up.mul(gate.mul(gate.sigmoid())), params[`${prefix}.down_proj.weight`]!);
}

/** logits = ŝ_z ⊙ (h_L · W_headᵀ), no final norm. */
export function ngptLogits(h: tf.Tensor, params: Params, cfg: ModelConfig): tf.Tensor {
  return linear(h, params['lm_head.weight']!).mul(params['lm_head.logit_scale']!.mul(Math.sqrt(cfg.d_model)));
}

/** Matrices nGPT keeps unit along the axis its code normalizes: columns of W_o and W_down, rows of the rest. */
export function ngptUnitAxis(key: string): 0 | 1 | undefined {
  if (/\.(o_proj|down_proj)\.weight$/.test(key)) return 0;
  if (/(embed_tokens|lm_head|_proj)\.weight$/.test(key)) return 1;
  return undefined;
}

/** W ← W / ‖W‖₂ along its unit axis, after every optimizer step (no ε). */
export function renormalize(params: Params): void {
  for (const [key, w] of Object.entries(params)) {
    const axis = ngptUnitAxis(key);
    if (axis === undefined) continue;
    params[key] = tf.tidy(() => w.mul(w.square().sum(axis, true).rsqrt()));
    w.dispose();
  }
}
