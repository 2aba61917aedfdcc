// The placement strategies of MODEL.md §3 and §7.2, one entry per row of their
// tables. Modifiers (residual scales, GPAS) reach a block through its context,
// so they compose with every strategy instead of multiplying the entries.
import type * as tf from '@tensorflow/tfjs';
import type { ModelConfig, Strategy } from './config.ts';
import type { Apply } from './norms.ts';
import { unit } from './norms.ts';

/** The norm positions a block can have (MODEL.md §3 notation). */
export type Slot = 'in' | 'ffnIn' | 'attnOut' | 'ffnOut' | 'attnPost' | 'ffnPost';
export type QkvNorm = 'q' | 'k' | 'v';

export interface BlockContext {
  x: tf.Tensor;
  /** 1-based block index ℓ. */
  layer: number;
  cfg: ModelConfig;
  attn: Apply;
  ffn: Apply;
  norm: Record<Slot, Apply>;
  /** c_A ⊙ B_A and c_M ⊙ B_M where a branch enters the residual sum (§7.8); identity without residual_scale. */
  scale: { attn: Apply; ffn: Apply };
  /** GPAS (§7.4): `sum` wraps a pre-family residual sum, `copy` a post-family residual copy; identity without gpas. */
  gpas: { sum: Apply; copy: Apply };
  /** The block's own parameter `model.layers.{i}.<name>`. */
  param(name: string): tf.Tensor;
}

/** What the block's attention and feed-forward carry beyond MODEL.md §2 (§7.3, §7.5, §7.6). */
export type Sublayers = 'standard' | 'normformer' | 'subln' | 'ngpt';

export interface StrategyDef {
  /** Slot → module name under `model.layers.{i}.` (MODEL.md §4). */
  slots(layer: number, cfg: ModelConfig): Partial<Record<Slot, string>>;
  /** Per-head norms the strategy itself puts on q, k, v (on top of `qk_norm`). */
  qkvNorms(layer: number, cfg: ModelConfig): QkvNorm[];
  sublayers: Sublayers;
  /** Parameters of the block beyond sub-layers, norms and modifiers: name → shape. */
  blockParams(cfg: ModelConfig): [string, number[]][];
  block(ctx: BlockContext): tf.Tensor;
}

const LLAMA_SLOTS = { in: 'input_layernorm', ffnIn: 'post_attention_layernorm' };
const PERI_SLOTS = {
  in: 'input_layernorm', attnOut: 'post_attention_layernorm',
  ffnIn: 'pre_feedforward_layernorm', ffnOut: 'post_feedforward_layernorm',
};
const POST_SLOTS = { attnPost: 'post_attention_layernorm', ffnPost: 'post_feedforward_layernorm' };
const ALL_QKV: QkvNorm[] = ['q', 'k', 'v'];
const standard = { qkvNorms: (): QkvNorm[] => [], sublayers: 'standard' as const, blockParams: () => [] };

const pre: StrategyDef = {
  ...standard,
  slots: () => LLAMA_SLOTS,
  block: ({ x, attn, ffn, norm, scale, gpas }) => {
    const u = gpas.sum(x.add(scale.attn(attn(norm.in(x)))));
    return gpas.sum(u.add(scale.ffn(ffn(norm.ffnIn(u)))));
  },
};

const post: StrategyDef = {
  ...standard,
  slots: () => POST_SLOTS,
  block: ({ x, attn, ffn, norm, scale, gpas }) => {
    const u = norm.attnPost(gpas.copy(x).add(scale.attn(attn(x))));
    return norm.ffnPost(gpas.copy(u).add(scale.ffn(ffn(u))));
  },
};

/** Mix-LN: the first P = floor(αL) blocks are Post-LN, the rest Pre-LN. */
export function isMixPostBlock(layer: number, cfg: ModelConfig): boolean {
  return layer <= Math.floor(cfg.mix_alpha * cfg.n_layers + 1e-9);
}

const mix: StrategyDef = {
  ...standard,
  slots: (layer, cfg) => (isMixPostBlock(layer, cfg) ? post : pre).slots(layer, cfg),
  block: (ctx) => (isMixPostBlock(ctx.layer, ctx.cfg) ? post : pre).block(ctx),
};

/** LayerNorm Scaling (Curse of Depth eq. 12): each sub-layer norm output times 1/sqrt(ℓ). */
const lns: StrategyDef = {
  ...standard,
  slots: () => LLAMA_SLOTS,
  block: ({ x, layer, attn, ffn, norm, scale, gpas }) => {
    const s = 1 / Math.sqrt(layer);
    const u = gpas.sum(x.add(scale.attn(attn(norm.in(x).mul(s)))));
    return gpas.sum(u.add(scale.ffn(ffn(norm.ffnIn(u).mul(s)))));
  },
};

/** Peri-LN and Sandwich-LN share the block; they differ only in the embedding norm default. */
const peri: StrategyDef = {
  ...standard,
  slots: () => PERI_SLOTS,
  block: ({ x, attn, ffn, norm, scale, gpas }) => {
    const u = gpas.sum(x.add(scale.attn(norm.attnOut(attn(norm.in(x))))));
    return gpas.sum(u.add(scale.ffn(norm.ffnOut(ffn(norm.ffnIn(u))))));
  },
};

/** DeepNet, decoder-only: residual up-weighted by a = (2L)^(1/4). */
export function deepnormAlpha(cfg: ModelConfig): number {
  return Math.pow(2 * cfg.n_layers, 0.25);
}

const deepnorm: StrategyDef = {
  ...standard,
  slots: () => POST_SLOTS,
  block: ({ x, cfg, attn, ffn, norm, scale, gpas }) => {
    const a = deepnormAlpha(cfg);
    const u = norm.attnPost(gpas.copy(x).mul(a).add(scale.attn(attn(x))));
    return norm.ffnPost(gpas.copy(u).mul(a).add(scale.ffn(ffn(u))));
  },
};

/** HybridNorm: QKV norms in attention, Post-Norm FFN whose residual is taken after the norm. */
const hybridnorm: StrategyDef = {
  ...standard,
  slots: () => ({ ffnPost: 'post_feedforward_layernorm' }),
  qkvNorms: () => ALL_QKV,
  block: ({ x, attn, ffn, norm, scale }) => {
    const u = x.add(scale.attn(attn(x)));
    const z = norm.ffnPost(u);
    return z.add(scale.ffn(ffn(z)));
  },
};

/** HybridNorm*: block 1 is Pre-Norm with QKV norms, the rest HybridNorm. */
const hybridnormStar: StrategyDef = {
  ...hybridnorm,
  slots: (layer, cfg) => (layer === 1 ? pre : hybridnorm).slots(layer, cfg),
  block: (ctx) => (ctx.layer === 1 ? pre : hybridnorm).block(ctx),
};

/** NormFormer: Peri-style attention output norm, HeadScale, an FFN sub-norm, optional ResScale λ on the FFN residual. */
const normformer: StrategyDef = {
  ...standard,
  slots: () => ({ in: 'input_layernorm', attnOut: 'post_attention_layernorm', ffnIn: 'pre_feedforward_layernorm' }),
  sublayers: 'normformer',
  blockParams: (cfg) => (cfg.normformer_resid_scale ? [['resid_scale', [cfg.d_model]]] : []),
  block: ({ x, cfg, attn, ffn, norm, scale, param }) => {
    const u = x.add(scale.attn(norm.attnOut(attn(norm.in(x)))));
    const residual = cfg.normformer_resid_scale ? u.mul(param('resid_scale')) : u;
    return residual.add(scale.ffn(ffn(norm.ffnIn(u))));
  },
};

/** Sub-LN (Magneto): the `pre` block whose sub-layers norm their inner activations. */
const subln: StrategyDef = { ...pre, sublayers: 'subln' };

/** nGPT's effective α̂ = |α · 0.05 · sqrt(d)| (MODEL.md §7.3). */
function ngptAlpha(alpha: tf.Tensor, cfg: ModelConfig): tf.Tensor {
  return alpha.mul(0.05 * Math.sqrt(cfg.d_model)).abs();
}

/** nGPT: hidden states on the unit sphere, each branch an interpolation towards the normalized sub-layer output. */
const ngpt: StrategyDef = {
  slots: () => ({}),
  qkvNorms: () => [],
  sublayers: 'ngpt',
  blockParams: (cfg) => [['attn_alpha', [cfg.d_model]], ['mlp_alpha', [cfg.d_model]]],
  block: ({ x, cfg, attn, ffn, param }) => {
    const hx = unit(x);
    const u = unit(hx.add(ngptAlpha(param('attn_alpha'), cfg).mul(unit(attn(x)).sub(hx))));
    const hu = unit(u);
    return unit(hu.add(ngptAlpha(param('mlp_alpha'), cfg).mul(unit(ffn(u)).sub(hu))));
  },
};

/** DyT and `none` are the `pre` block; their norm modules differ (norms.ts `normKind`). */
export const strategies: Record<Strategy, StrategyDef> = {
  pre,
  post,
  mix,
  lns,
  peri,
  sandwich: peri,
  deepnorm,
  hybridnorm,
  hybridnorm_star: hybridnormStar,
  dyt: pre,
  none: pre,
  ngpt,
  normformer,
  subln,
};

/** Whether the model ends with N_final (all but `none` and `ngpt`). */
export const hasFinalNorm = (cfg: ModelConfig) => cfg.norm !== 'none' && cfg.norm !== 'ngpt';
