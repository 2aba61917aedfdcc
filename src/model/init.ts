// Initialization (MODEL.md §3, §7.9): matrices N(0, std²) with the std of the
// config's `init` scheme and the strategy's multiplier; every other parameter
// at its fixed init. Drawn with normlab's own seeded generator so a seed gives
// the same weights on every backend.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../data/rng.ts';
import type { ModelConfig } from './config.ts';
import { parameterShapes } from './model.ts';
import { ngptUnitAxis } from './ngpt.ts';
import type { Params } from './norms.ts';

type Role = 'qkv' | 'o' | 'gate_up' | 'down' | 'embed_head';

function matrixRole(key: string): Role {
  if (/self_attn\.[qkv]_proj/.test(key)) return 'qkv';
  if (/self_attn\.o_proj/.test(key)) return 'o';
  if (/mlp\.(gate|up)_proj/.test(key)) return 'gate_up';
  if (/mlp\.down_proj/.test(key)) return 'down';
  return 'embed_head';
}

/** 1-based block of a key, or 0 outside the blocks. */
function layerOf(key: string): number {
  const m = /^model\.layers\.(\d+)\./.exec(key);
  return m ? Number(m[1]) + 1 : 0;
}

/** σ of MODEL.md §7.9's table for one matrix. */
export function schemeStd(cfg: ModelConfig, role: Role, layer: number): number {
  const { init_std: s, n_layers: L, d_model: d, ffn_dim: F } = cfg;
  if (role === 'embed_head') return s;
  switch (cfg.init) {
    case 'normal': return s;
    case 'scaled': return role === 'o' || role === 'down' ? s / Math.sqrt(2 * L) : s;
    case 'depth_scaled': return role === 'o' || role === 'down' ? s / Math.sqrt(2 * layer) : s;
    case 'lir': return s / Math.sqrt(layer);
    case 'small': return role === 'qkv' || role === 'o' ? Math.sqrt(2 / (5 * d)) : Math.sqrt(2 / (d + F));
  }
}

/** DeepNet's β = (8L)^(−1/4) and Magneto's γ = sqrt(ln 2L) on W_v, W_o, W_gate, W_up, W_down. */
export function strategyMultiplier(cfg: ModelConfig, key: string): number {
  if (!/\.(self_attn\.[vo]_proj|mlp\.(gate|up|down)_proj)\.weight$/.test(key)) return 1;
  if (cfg.norm === 'deepnorm') return Math.pow(8 * cfg.n_layers, -0.25);
  if (cfg.norm === 'subln') return Math.sqrt(Math.log(2 * cfg.n_layers));
  return 1;
}

/** LayerScale's ε by depth (CaiT), or SkipInit's 1/sqrt(L) (MODEL.md §7.8). */
export function residualScaleInit(cfg: ModelConfig): number {
  if (cfg.residual_scale_init !== null) return cfg.residual_scale_init;
  if (cfg.residual_scale === 'skipinit') return 1 / Math.sqrt(cfg.n_layers);
  const L = cfg.n_layers;
  return L <= 18 ? 0.1 : L <= 24 ? 1e-5 : 1e-6;
}

/** Width n of the norm module a ScaleNorm gain belongs to (its init is sqrt(n)). */
function normWidth(cfg: ModelConfig, key: string): number {
  if (/self_attn\.[qkv]_norm\./.test(key)) return cfg.d_model / cfg.n_heads;
  if (/ffn_sub_norm\./.test(key)) return cfg.ffn_dim;
  return cfg.d_model;
}

/** Fixed initial values of the vector and scalar parameters, first match wins. */
const FIXED: [RegExp, (cfg: ModelConfig, key: string) => number][] = [
  [/norm\.weight$/, (cfg, key) => (cfg.norm_type === 'scalenorm' && cfg.norm !== 'dyt' ? Math.sqrt(normWidth(cfg, key)) : 1)],
  [/\.bias$/, () => 0],
  [/norm\.alpha$/, (cfg) => cfg.dyt_alpha_init],
  [/gpas_block\.gate$/, () => 0],
  [/(head_scale|resid_scale)$/, () => 1],
  [/_(skip|layer)_scale$/, residualScaleInit],
  [/(attn_alpha|mlp_alpha|qk_scale|logit_scale)$/, (cfg) => 1 / Math.sqrt(cfg.d_model)],
  [/(up_scale|gate_scale)$/, () => 1],
];

function fixedValue(cfg: ModelConfig, key: string): number {
  const rule = FIXED.find(([pattern]) => pattern.test(key));
  if (!rule) throw new Error(`no initializer for parameter ${key}`);
  return rule[1](cfg, key);
}

function normalMatrix(shape: number[], std: number, rng: Rng): Float32Array {
  const out = new Float32Array(shape[0]! * shape[1]!);
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * std;
  return out;
}

/** nGPT: N(0, 1/d), then unit along the axis its training keeps unit (normalized in float64). */
function ngptMatrix(cfg: ModelConfig, key: string, shape: number[], rng: Rng): Float32Array {
  const [rows, cols] = shape as [number, number];
  const raw = Float64Array.from(normalMatrix(shape, 1 / Math.sqrt(cfg.d_model), rng));
  const byRow = ngptUnitAxis(key) === 1;
  const out = new Float32Array(raw.length);
  for (let a = 0; a < (byRow ? rows : cols); a++) {
    const index = (b: number) => (byRow ? a * cols + b : b * cols + a);
    let sq = 0;
    for (let b = 0; b < (byRow ? cols : rows); b++) sq += raw[index(b)]! ** 2;
    for (let b = 0; b < (byRow ? cols : rows); b++) out[index(b)] = raw[index(b)]! / Math.sqrt(sq);
  }
  return out;
}

export function initialValue(cfg: ModelConfig, key: string, shape: number[], rng: Rng): Float32Array {
  if (shape.length < 2) return new Float32Array(shape[0]!).fill(fixedValue(cfg, key));
  if (cfg.norm === 'ngpt') return ngptMatrix(cfg, key, shape, rng);
  const std = schemeStd(cfg, matrixRole(key), layerOf(key)) * strategyMultiplier(cfg, key);
  return normalMatrix(shape, std, rng);
}

export function initParams(cfg: ModelConfig, seed: number): Params {
  const rng = new Rng(seed);
  const params: Params = {};
  for (const [key, shape] of parameterShapes(cfg)) params[key] = tf.tensor(initialValue(cfg, key, shape, rng), shape);
  return params;
}
