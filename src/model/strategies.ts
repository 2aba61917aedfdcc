// The placement strategies of MODEL.md §3, one entry per row of its table.
import type * as tf from '@tensorflow/tfjs';
import type { ModelConfig, Strategy } from './config.ts';
import type { Apply } from './norms.ts';

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
}

export interface StrategyDef {
  /** Slot → module name under `model.layers.{i}.` (MODEL.md §4). */
  slots(layer: number, cfg: ModelConfig): Partial<Record<Slot, string>>;
  /** Per-head norms the strategy itself puts on q, k, v (on top of `qk_norm`). */
  qkvNorms(layer: number, cfg: ModelConfig): QkvNorm[];
  block(ctx: BlockContext): tf.Tensor;
}

const LLAMA_SLOTS = { in: 'input_layernorm', ffnIn: 'post_attention_layernorm' };
const PERI_SLOTS = {
  in: 'input_layernorm', attnOut: 'post_attention_layernorm',
  ffnIn: 'pre_feedforward_layernorm', ffnOut: 'post_feedforward_layernorm',
};
const POST_SLOTS = { attnPost: 'post_attention_layernorm', ffnPost: 'post_feedforward_layernorm' };
const ALL_QKV: QkvNorm[] = ['q', 'k', 'v'];
const noQkv = () => [];

const pre: StrategyDef = {
  slots: () => LLAMA_SLOTS,
  qkvNorms: noQkv,
  block: ({ x, attn, ffn, norm }) => {
    const u = x.add(attn(norm.in(x)));
    return u.add(ffn(norm.ffnIn(u)));
  },
};

const post: StrategyDef = {
  slots: () => POST_SLOTS,
  qkvNorms: noQkv,
  block: ({ x, attn, ffn, norm }) => {
    const u = norm.attnPost(x.add(attn(x)));
    return norm.ffnPost(u.add(ffn(u)));
  },
};

/** Mix-LN: the first P = floor(αL) blocks are Post-LN, the rest Pre-LN. */
export function isMixPostBlock(layer: number, cfg: ModelConfig): boolean {
  return layer <= Math.floor(cfg.mix_alpha * cfg.n_layers + 1e-9);
}

const mix: StrategyDef = {
  slots: (layer, cfg) => (isMixPostBlock(layer, cfg) ? post : pre).slots(layer, cfg),
  qkvNorms: noQkv,
  block: (ctx) => (isMixPostBlock(ctx.layer, ctx.cfg) ? post : pre).block(ctx),
};

/** LayerNorm Scaling (Curse of Depth eq. 12): each sub-layer norm output times 1/sqrt(ℓ). */
const lns: StrategyDef = {
  slots: () => LLAMA_SLOTS,
  qkvNorms: noQkv,
  block: ({ x, layer, attn, ffn, norm }) => {
    const s = 1 / Math.sqrt(layer);
    const u = x.add(attn(norm.in(x).mul(s)));
    return u.add(ffn(norm.ffnIn(u).mul(s)));
  },
};

/** Peri-LN and Sandwich-LN share the block; they differ only in the embedding norm default. */
const peri: StrategyDef = {
  slots: () => PERI_SLOTS,
  qkvNorms: noQkv,
  block: ({ x, attn, ffn, norm }) => {
    const u = x.add(norm.attnOut(attn(norm.in(x))));
    return u.add(norm.ffnOut(ffn(norm.ffnIn(u))));
  },
};

/** DeepNet, decoder-only: residual up-weighted by a = (2L)^(1/4). */
export function deepnormAlpha(cfg: ModelConfig): number {
  return Math.pow(2 * cfg.n_layers, 0.25);
}

const deepnorm: StrategyDef = {
  slots: () => POST_SLOTS,
  qkvNorms: noQkv,
  block: ({ x, cfg, attn, ffn, norm }) => {
    const a = deepnormAlpha(cfg);
    const u = norm.attnPost(x.mul(a).add(attn(x)));
    return norm.ffnPost(u.mul(a).add(ffn(u)));
  },
};

/** HybridNorm: QKV norms in attention, Post-Norm FFN whose residual is taken after the norm. */
const hybridnorm: StrategyDef = {
  slots: () => ({ ffnPost: 'post_feedforward_layernorm' }),
  qkvNorms: () => ALL_QKV,
  block: ({ x, attn, ffn, norm }) => {
    const u = x.add(attn(x));
    const z = norm.ffnPost(u);
    return z.add(ffn(z));
  },
};

/** HybridNorm*: block 1 is Pre-Norm with QKV norms, the rest HybridNorm. */
const hybridnormStar: StrategyDef = {
  slots: (layer, cfg) => (layer === 1 ? pre : hybridnorm).slots(layer, cfg),
  qkvNorms: () => ALL_QKV,
  block: (ctx) => (ctx.layer === 1 ? pre : hybridnorm).block(ctx),
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
};
