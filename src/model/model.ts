// The LLaMA-style decoder of MODEL.md §1: embedding, L blocks of the chosen
// strategy, final norm, untied head.
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, usesEmbedNorm } from './config.ts';
import { attention, causalMask, linear, ropeTables, swiglu, type RopeTables } from './layers.ts';
import { type Apply, normKind, normModule, normParamShapes, type Params } from './norms.ts';
import { type QkvNorm, type Slot, strategies } from './strategies.ts';

export const blockPrefix = (layer: number) => `model.layers.${layer - 1}`;

/** The strategy's per-head norms plus those `qk_norm` asks for. */
function qkvNorms(cfg: ModelConfig, layer: number): QkvNorm[] {
  const own = strategies[cfg.norm].qkvNorms(layer, cfg);
  const extra: QkvNorm[] = cfg.qk_norm ? ['q', 'k'] : [];
  return (['q', 'k', 'v'] as const).filter((n) => own.includes(n) || extra.includes(n));
}

/** Every parameter's key and shape (MODEL.md §4), in a stable order. */
export function parameterShapes(cfg: ModelConfig): Map<string, number[]> {
  const { vocab_size: V, d_model: d, ffn_dim: F, n_layers: L } = cfg;
  const hd = d / cfg.n_heads;
  const kind = normKind(cfg);
  const shapes = new Map<string, number[]>();
  const add = (entries: [string, number[]][]) => entries.forEach(([k, s]) => shapes.set(k, s));
  add([['model.embed_tokens.weight', [V, d]]]);
  if (usesEmbedNorm(cfg)) add(normParamShapes(kind, 'model.embed_norm', d));
  for (let layer = 1; layer <= L; layer++) {
    const p = blockPrefix(layer);
    for (const name of ['q', 'k', 'v', 'o']) add([[`${p}.self_attn.${name}_proj.weight`, [d, d]]]);
    for (const n of qkvNorms(cfg, layer)) add(normParamShapes(kind, `${p}.self_attn.${n}_norm`, hd));
    add([[`${p}.mlp.gate_proj.weight`, [F, d]], [`${p}.mlp.up_proj.weight`, [F, d]], [`${p}.mlp.down_proj.weight`, [d, F]]]);
    for (const module of Object.values(strategies[cfg.norm].slots(layer, cfg))) add(normParamShapes(kind, `${p}.${module}`, d));
  }
  if (cfg.norm !== 'none') add(normParamShapes(kind, 'model.norm', d));
  add([['lm_head.weight', [V, d]]]);
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

  /** Forward pass on input ids [B, T]. Call inside tf.tidy. */
  forward(params: Params, inputs: tf.Tensor2D, options: ForwardOptions = {}): ForwardResult {
    const cfg = this.cfg;
    const [, T] = inputs.shape;
    const { tables, mask } = this.constantsFor(T);
    const kind = normKind(cfg);
    const norm = (prefix: string): Apply => normModule(kind, params, prefix, cfg.norm_eps);
    const strategy = strategies[cfg.norm];

    let h = tf.gather(params['model.embed_tokens.weight']!, inputs) as tf.Tensor3D;
    if (usesEmbedNorm(cfg)) h = norm('model.embed_norm')(h) as tf.Tensor3D;
    const hidden: tf.Tensor3D[] = options.hidden ? [h] : [];
    for (let layer = 1; layer <= cfg.n_layers; layer++) {
      if (layer !== options.skipLayer) {
        const p = blockPrefix(layer);
        const qkv = Object.fromEntries(qkvNorms(cfg, layer).map((n) => [n, norm(`${p}.self_attn.${n}_norm`)]));
        const slots = strategy.slots(layer, cfg);
        const slotNorm = (slot: Slot): Apply => {
          const module = slots[slot];
          if (!module) return () => { throw new Error(`strategy ${cfg.norm} has no ${slot} norm in block ${layer}`); };
          return norm(`${p}.${module}`);
        };
        h = strategy.block({
          x: h, layer, cfg,
          attn: (x) => attention(x, params, `${p}.self_attn`, cfg.n_heads, tables, mask, qkv),
          ffn: (x) => swiglu(x, params, `${p}.mlp`),
          norm: { in: slotNorm('in'), ffnIn: slotNorm('ffnIn'), attnOut: slotNorm('attnOut'), ffnOut: slotNorm('ffnOut'), attnPost: slotNorm('attnPost'), ffnPost: slotNorm('ffnPost') },
        }) as tf.Tensor3D;
      }
      if (options.hidden) hidden.push(h);
    }
    const z = cfg.norm === 'none' ? h : norm('model.norm')(h);
    const logits = linear(z, params['lm_head.weight']!) as tf.Tensor3D;
    return { logits, hidden };
  }

  dispose(): void {
    for (const c of this.constants.values()) tf.dispose([c.tables.cos, c.tables.sin, c.mask]);
    this.constants.clear();
  }
}

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
export function crossEntropy(logits: tf.Tensor3D, targets: tf.Tensor2D, weights?: tf.Tensor2D): tf.Scalar {
  const V = logits.shape[2];
  const logProbs = tf.logSoftmax(logits.reshape([-1, V]));
  const picked = logProbs.mul(tf.oneHot(targets.reshape([-1]), V)).sum(-1);
  if (!weights) return picked.mean().neg() as tf.Scalar;
  const w = weights.reshape([-1]);
  return picked.mul(w).sum().div(w.sum()).neg() as tf.Scalar;
}
