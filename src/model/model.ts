// The LLaMA-style decoder of MODEL.md §1: embedding, L blocks of the chosen
// strategy, final norm, untied head.
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, usesEmbedNorm } from './config.ts';
import { hasKernel, runFused } from './fused.ts';
import { attention, causalMask, linear, ropeTables, swiglu, type RopeTables } from './layers.ts';
import { type Apply, normKind, normModule, normParamShapes, type Params } from './norms.ts';
import { ngptAttention, ngptFfn, ngptLogits } from './ngpt.ts';
import { type BlockContext, hasFinalNorm, type QkvNorm, type Slot, strategies } from './strategies.ts';
import type { KvCache } from './generate.ts';

export const blockPrefix = (layer: number) => `model.layers.${layer - 1}`;

/** The strategy's per-head norms plus those `qk_norm` asks for. */
function qkvNorms(cfg: ModelConfig, layer: number): QkvNorm[] {
  const own = strategies[cfg.norm].qkvNorms(layer, cfg);
  const extra: QkvNorm[] = cfg.qk_norm ? ['q', 'k'] : [];
  return (['q', 'k', 'v'] as const).filter((n) => own.includes(n) || extra.includes(n));
}

/** Modifier parameters of a block (§7.4, §7.8): name → shape. */
function modifierParams(cfg: ModelConfig): [string, number[]][] {
  const out: [string, number[]][] = [];
  if (cfg.gpas) out.push(['gpas_block.gate', [1]]);
  if (cfg.residual_scale === 'skipinit') out.push(['attn_skip_scale', [1]], ['mlp_skip_scale', [1]]);
  if (cfg.residual_scale === 'layerscale') out.push(['attn_layer_scale', [cfg.d_model]], ['mlp_layer_scale', [cfg.d_model]]);
  return out;
}

/** Sub-layer parameters beyond MODEL.md §2 (§7.3, §7.5, §7.6): name → shape, norms by width. */
function sublayerParams(cfg: ModelConfig): { params: [string, number[]][]; norms: [string, number][] } {
  const { d_model: d, ffn_dim: F, n_heads: H } = cfg;
  switch (strategies[cfg.norm].sublayers) {
    case 'standard': return { params: [], norms: [] };
    case 'normformer': return { params: [['self_attn.head_scale', [H]]], norms: [['mlp.ffn_sub_norm', F]] };
    case 'subln': return { params: [], norms: [['self_attn.attn_sub_norm', d], ['mlp.ffn_sub_norm', F]] };
    case 'ngpt': return { params: [['self_attn.qk_scale', [d]], ['mlp.up_scale', [F]], ['mlp.gate_scale', [F]]], norms: [] };
  }
}

/** Every parameter's key and shape (MODEL.md §4, §7.11), in a stable order. */
export function parameterShapes(cfg: ModelConfig): Map<string, number[]> {
  const { vocab_size: V, d_model: d, ffn_dim: F, n_layers: L } = cfg;
  const hd = d / cfg.n_heads;
  const kind = normKind(cfg);
  const strategy = strategies[cfg.norm];
  const shapes = new Map<string, number[]>();
  const add = (entries: [string, number[]][]) => entries.forEach(([k, s]) => shapes.set(k, s));
  add([['model.embed_tokens.weight', [V, d]]]);
  if (usesEmbedNorm(cfg)) add(normParamShapes(kind, 'model.embed_norm', d));
  for (let layer = 1; layer <= L; layer++) {
    const p = blockPrefix(layer);
    const within = (entries: [string, number[]][]) => add(entries.map(([name, shape]) => [`${p}.${name}`, shape]));
    for (const name of ['q', 'k', 'v', 'o']) within([[`self_attn.${name}_proj.weight`, [d, d]]]);
    for (const n of qkvNorms(cfg, layer)) add(normParamShapes(kind, `${p}.self_attn.${n}_norm`, hd));
    within([['mlp.gate_proj.weight', [F, d]], ['mlp.up_proj.weight', [F, d]], ['mlp.down_proj.weight', [d, F]]]);
    for (const module of Object.values(strategy.slots(layer, cfg))) add(normParamShapes(kind, `${p}.${module}`, d));
    const sub = sublayerParams(cfg);
    within(sub.params);
    for (const [module, width] of sub.norms) add(normParamShapes(kind, `${p}.${module}`, width));
    within(strategy.blockParams(cfg));
    within(modifierParams(cfg));
  }
  if (hasFinalNorm(cfg)) add(normParamShapes(kind, 'model.norm', d));
  add([['lm_head.weight', [V, d]]]);
  if (cfg.norm === 'ngpt') add([['lm_head.logit_scale', [V]]]);
  return shapes;
}

export function parameterCount(cfg: ModelConfig): number {
  let n = 0;
  for (const shape of parameterShapes(cfg).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

export interface ForwardOptions {
  /** Keep h_0 … h_L (MODEL.md §1) for the diagnostics. */
  hidden?: boolean;
  /** 1-based block replaced by the identity (layer-drop analysis, MODEL.md §5). */
  skipLayer?: number;
  /** Generation: the inputs follow the cache's tokens, and their keys and values join it. */
  cache?: KvCache;
}

export interface ForwardResult {
  logits: tf.Tensor3D; // [B, T, V]
  hidden: tf.Tensor3D[];
}

/** Holds the constants (RoPE tables, causal mask) that depend only on the sequence length. */
export class Model {
  private constants = new Map<number, { tables: RopeTables; mask: tf.Tensor2D }>();

  constructor(readonly cfg: ModelConfig) {}

  private constantsFor(seqLen: number) {
    let c = this.constants.get(seqLen);
    if (!c) {
      // Kept: forward usually runs inside a tidy scope, and these live until dispose().
      const { cos, sin } = ropeTables(seqLen, this.cfg.d_model / this.cfg.n_heads, this.cfg.rope_theta);
      c = { tables: { cos: tf.keep(cos), sin: tf.keep(sin) }, mask: tf.keep(causalMask(seqLen)) };
      this.constants.set(seqLen, c);
    }
    return c;
  }

  /** RoPE rows and causal mask for T inputs at positions past … past+T−1, attending to all past+T keys. */
  private positions(seqLen: number, cache?: KvCache): { tables: RopeTables; mask: tf.Tensor2D } {
    if (!cache) return this.constantsFor(seqLen);
    // One table of the cache's capacity, sliced per call: no constants per length.
    const { tables, mask } = this.constantsFor(cache.capacity);
    const rows = (t: tf.Tensor2D) => t.slice([cache.past, 0], [seqLen, t.shape[1]]);
    return { tables: { cos: rows(tables.cos), sin: rows(tables.sin) }, mask: mask.slice([cache.past, 0], [seqLen, cache.past + seqLen]) };
  }

  /** Forward pass on input ids [B, T]. Call inside tf.tidy. */
  forward(params: Params, inputs: tf.Tensor2D, options: ForwardOptions = {}): ForwardResult {
    const cfg = this.cfg;
    const norm = (prefix: string): Apply => normModule(normKind(cfg), params, prefix, cfg.norm_eps);
    let h = tf.gather(params['model.embed_tokens.weight']!, inputs) as tf.Tensor3D;
    if (usesEmbedNorm(cfg)) h = norm('model.embed_norm')(h) as tf.Tensor3D;
    const hidden: tf.Tensor3D[] = options.hidden ? [h] : [];
    const positions = this.positions(inputs.shape[1], options.cache);
    for (let layer = 1; layer <= cfg.n_layers; layer++) {
      if (layer !== options.skipLayer) h = strategies[cfg.norm].block(this.blockContext(params, h, layer, positions, options.cache)) as tf.Tensor3D;
      if (options.hidden) hidden.push(h);
    }
    if (cfg.norm === 'ngpt') return { logits: ngptLogits(h, params, cfg) as tf.Tensor3D, hidden };
    const z = hasFinalNorm(cfg) ? norm('model.norm')(h) : h;
    return { logits: linear(z, params['lm_head.weight']!) as tf.Tensor3D, hidden };
  }

  private blockContext(params: Params, x: tf.Tensor, layer: number, { tables, mask }: { tables: RopeTables; mask: tf.Tensor2D }, cache?: KvCache): BlockContext {
    const cfg = this.cfg;
    const cached = cache && ((k: tf.Tensor, v: tf.Tensor) => cache.append(layer, k, v));
    const p = blockPrefix(layer);
    const param = (name: string) => {
      const t = params[`${p}.${name}`];
      if (!t) throw new Error(`missing parameter ${p}.${name}`);
      return t;
    };
    const norm = (module: string): Apply => normModule(normKind(cfg), params, `${p}.${module}`, cfg.norm_eps);
    const slots = strategies[cfg.norm].slots(layer, cfg);
    const slotNorm = (slot: Slot): Apply => {
      const module = slots[slot];
      if (!module) return () => { throw new Error(`strategy ${cfg.norm} has no ${slot} norm in block ${layer}`); };
      return norm(module);
    };
    const qkv = Object.fromEntries(qkvNorms(cfg, layer).map((n) => [n, norm(`self_attn.${n}_norm`)]));
    const sublayers = strategies[cfg.norm].sublayers;
    const attn: Apply = sublayers === 'ngpt'
      ? (y) => ngptAttention(y, params, `${p}.self_attn`, cfg, tables, mask, cached)
      : (y) => attention(y, params, `${p}.self_attn`, cfg.n_heads, tables, mask, {
        qkv, cache: cached,
        headScale: sublayers === 'normformer' ? param('self_attn.head_scale') : undefined,
        subNorm: sublayers === 'subln' ? norm('self_attn.attn_sub_norm') : undefined,
      });
    const ffnSubNorm = sublayers === 'normformer' || sublayers === 'subln' ? norm('mlp.ffn_sub_norm') : undefined;
    const ffn: Apply = sublayers === 'ngpt' ? (y) => ngptFfn(y, params, `${p}.mlp`, cfg) : (y) => swiglu(y, params, `${p}.mlp`, ffnSubNorm);
    return {
      x, layer, cfg, attn, ffn, param,
      norm: { in: slotNorm('in'), ffnIn: slotNorm('ffnIn'), attnOut: slotNorm('attnOut'), ffnOut: slotNorm('ffnOut'), attnPost: slotNorm('attnPost'), ffnPost: slotNorm('ffnPost') },
      scale: residualScales(cfg, param),
      gpas: cfg.gpas ? { sum: (v) => gpas(v, param('gpas_block.gate')), copy: (v) => gpas(v, param('gpas_block.gate')) } : { sum: identity, copy: identity },
    };
  }

  dispose(): void {
    for (const c of this.constants.values()) tf.dispose([c.tables.cos, c.tables.sin, c.mask]);
    this.constants.clear();
  }
}

const identity: Apply = (x) => x;

/** c_A, c_M of MODEL.md §7.8 as functions of the branch. */
function residualScales(cfg: ModelConfig, param: (name: string) => tf.Tensor): BlockContext['scale'] {
  switch (cfg.residual_scale) {
    case 'none': return { attn: identity, ffn: identity };
    case 'skipinit': return { attn: (b) => b.mul(param('attn_skip_scale')), ffn: (b) => b.mul(param('mlp_skip_scale')) };
    case 'layerscale': return { attn: (b) => b.mul(param('attn_layer_scale')), ffn: (b) => b.mul(param('mlp_layer_scale')) };
  }
}

/**
 * GPAS(h) = h − SiLU(α)·sg(h) (§7.4): the value is (1 − SiLU(α))·h, the
 * gradient to h is the identity, the gradient to α is −SiLU′(α)·⟨dy, h⟩.
 */
const gpas = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [h, gate, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([h, gate]);
  return {
    value: h.mul(tf.onesLike(gate).sub(gate.mul(gate.sigmoid()))),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [savedH, g] = saved as [tf.Tensor, tf.Tensor];
      const s = g.sigmoid();
      const siluPrime = s.mul(g.mul(tf.onesLike(s).sub(s)).add(1));
      const upstream = dy as tf.Tensor;
      return [upstream, siluPrime.mul(upstream.mul(savedH).sum()).neg().reshape(g.shape)];
    },
  };
}) as (h: tf.Tensor, gate: tf.Tensor) => tf.Tensor;

/** Splits a [B, T+1] token batch into inputs t[:, :T] and targets t[:, 1:]. */
export function splitBatch(tokens: tf.Tensor2D): { inputs: tf.Tensor2D; targets: tf.Tensor2D } {
  const [B, T1] = tokens.shape;
  return {
    inputs: tokens.slice([0, 0], [B, T1 - 1]),
    targets: tokens.slice([0, 1], [B, T1 - 1]),
  };
}

/**
 * Mean cross-entropy over the positions whose weight is 1 (all of them when
 * `weights` is absent; padding gets 0 in truncated batches).
 */
/** Σ of the cross-entropy over the targets that count (weight 1; padding weighs 0): a gradient step's loss_sum. */
export function crossEntropySum(logits: tf.Tensor3D, targets: tf.Tensor2D, weights?: tf.Tensor2D): tf.Scalar {
  const nll = tokenLosses(logits.reshape([-1, logits.shape[2]]), targets.reshape([-1]));
  return (weights ? nll.mul(weights.reshape([-1])) : nll).sum() as tf.Scalar;
}

export function crossEntropy(logits: tf.Tensor3D, targets: tf.Tensor2D, weights?: tf.Tensor2D): tf.Scalar {
  const nll = tokenLosses(logits.reshape([-1, logits.shape[2]]), targets.reshape([-1]));
  if (!weights) return nll.mean() as tf.Scalar;
  const w = weights.reshape([-1]);
  return nll.mul(w).sum().div(w.sum()) as tf.Scalar;
}

/** −log softmax(logits)[target] of each row of logits [N, V]. */
export function tokenLosses(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  if (hasKernel('NormlabCrossEntropy')) return runFused('NormlabCrossEntropy', { logits, targets });
  return tf.logSoftmax(logits).mul(tf.oneHot(targets, logits.shape[1])).sum(-1).neg() as tf.Tensor1D;
}
