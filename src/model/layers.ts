// Attention with RoPE and SwiGLU feed-forward (MODEL.md §2.1, §2.2).
import * as tf from '@tensorflow/tfjs';
import { hasKernel, runFused } from './fused.ts';
import type { Apply, Params } from './norms.ts';

/** y = x · Wᵀ for x [..., in] and W [out, in] (PyTorch layout). */
export function linear(x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  if (hasKernel('NormlabLinear')) return runFused('NormlabLinear', { x, weight });
  const shape = x.shape;
  const flat = x.reshape([-1, shape[shape.length - 1]]);
  const y = tf.matMul(flat, weight, false, true);
  return y.reshape([...shape.slice(0, -1), weight.shape[0]]);
}

export interface RopeTables {
  cos: tf.Tensor2D; // [T, hd]
  sin: tf.Tensor2D;
}

/** Hugging Face LLaMA's cos/sin tables, built in float64 then rounded once. */
export function ropeTables(seqLen: number, headDim: number, theta: number): RopeTables {
  const half = headDim / 2;
  const cos = new Float32Array(seqLen * headDim);
  const sin = new Float32Array(seqLen * headDim);
  for (let p = 0; p < seqLen; p++) {
    for (let j = 0; j < half; j++) {
      const angle = p * Math.pow(theta, (-2 * j) / headDim);
      for (const offset of [j, j + half]) {
        cos[p * headDim + offset] = Math.cos(angle);
        sin[p * headDim + offset] = Math.sin(angle);
      }
    }
  }
  return { cos: tf.tensor2d(cos, [seqLen, headDim]), sin: tf.tensor2d(sin, [seqLen, headDim]) };
}

/** RoPE(x) = x·cos + rotate_half(x)·sin on x [B, H, T, hd]. */
export function rope(x: tf.Tensor, tables: RopeTables): tf.Tensor {
  if (hasKernel('NormlabRope')) return runFused('NormlabRope', { x, cos: tables.cos, sin: tables.sin });
  const half = x.shape[3]! / 2;
  const [x1, x2] = tf.split(x, [half, half], 3);
  const rotated = tf.concat([x2!.neg(), x1!], 3);
  return x.mul(tables.cos).add(rotated.mul(tables.sin));
}

/** Additive causal mask [T, T]: a large negative where the key is after the query. */
export function causalMask(seqLen: number): tf.Tensor2D {
  const mask = new Float32Array(seqLen * seqLen);
  for (let q = 0; q < seqLen; q++) for (let k = q + 1; k < seqLen; k++) mask[q * seqLen + k] = -1e9;
  return tf.tensor2d(mask, [seqLen, seqLen]);
}

export interface AttentionOptions {
  /** Per-head norms on q, k, v before RoPE (MODEL.md §2.3). */
  qkv: { q?: Apply; k?: Apply; v?: Apply };
  /** NormFormer's HeadScale γ [H], on each head's output before W_o (§7.5). */
  headScale?: tf.Tensor;
  /** Sub-LN's norm over the concatenated heads before W_o (§7.6). */
  subNorm?: Apply;
  /** Generation's KV cache: takes this call's keys and values, returns all keys and values so far. */
  cache?: KvAppend;
}

export type KvAppend = (k: tf.Tensor, v: tf.Tensor) => [tf.Tensor, tf.Tensor];

/** [B, T, d] → [B, H, T, hd] after an optional per-head norm. */
export function splitHeads(y: tf.Tensor, nHeads: number, norm?: Apply): tf.Tensor {
  const [B, T, d] = y.shape as [number, number, number];
  const heads = y.reshape([B, T, nHeads, d / nHeads]);
  return (norm ? norm(heads) : heads).transpose([0, 2, 1, 3]);
}

/** [B, H, T, hd] → [B, T, d]. */
export function mergeHeads(o: tf.Tensor): tf.Tensor {
  const [B, H, T, hd] = o.shape as [number, number, number, number];
  return o.transpose([0, 2, 1, 3]).reshape([B, T, H * hd]);
}

/** softmax(scores·scale + mask) over the last axis. */
export function maskedSoftmax(scores: tf.Tensor, mask: tf.Tensor2D, scale: number): tf.Tensor {
  if (hasKernel('NormlabMaskedSoftmax')) return runFused('NormlabMaskedSoftmax', { scores, mask }, { scale });
  return tf.softmax(scores.mul(scale).add(mask));
}

/**
 * softmax(q·kᵀ·scale + mask)·v for q [B, H, T, hd] and k, v [B, H, S, hd];
 * `mask` [T, S] is causal for queries at the last T of S positions (S > T: a
 * KV cache's).
 */
export function causalAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, mask: tf.Tensor2D): tf.Tensor {
  if (hasKernel('NormlabAttention')) {
    // With T = S the kernel applies the causal mask itself, as flash attention needs.
    const inputs: Record<string, tf.Tensor> = q.shape[2] === k.shape[2] ? { q, k, v } : { q, k, v, mask };
    // Recorded for the gradient only when tfjs is recording one.
    return runFused('NormlabAttention', inputs, { scale, record: Number(tf.engine().isTapeOn()) });
  }
  return tf.matMul(maskedSoftmax(tf.matMul(q, k, false, true), mask, scale), v);
}

/** The keys and values attention uses: these alone, or (generating) all cached so far. */
export function withCache(k: tf.Tensor, v: tf.Tensor, cache?: KvAppend): [tf.Tensor, tf.Tensor] {
  return cache ? cache(k, v) : [k, v];
}

/** Causal self-attention of one block; `prefix` is `model.layers.{i}.self_attn`. */
export function attention(
  x: tf.Tensor, params: Params, prefix: string, nHeads: number,
  tables: RopeTables, mask: tf.Tensor2D, options: AttentionOptions,
): tf.Tensor {
  const hd = x.shape[2]! / nHeads;
  const heads = (name: 'q' | 'k' | 'v') => splitHeads(linear(x, params[`${prefix}.${name}_proj.weight`]!), nHeads, options.qkv[name]);
  const [k, v] = withCache(rope(heads('k'), tables), heads('v'), options.cache);
  let o = causalAttention(rope(heads('q'), tables), k, v, 1 / Math.sqrt(hd), mask);
  if (options.headScale) o = o.mul(options.headScale.reshape([1, nHeads, 1, 1]));
  let merged = mergeHeads(o);
  if (options.subNorm) merged = options.subNorm(merged);
  return linear(merged, params[`${prefix}.o_proj.weight`]!);
}

/** SiLU(gate) ⊙ up. */
export function gatedSilu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  if (hasKernel('NormlabSwiGLU')) return runFused('NormlabSwiGLU', { gate, up });
  return gate.mul(gate.sigmoid()).mul(up);
}

/** SwiGLU: (SiLU(x·W_gateᵀ) ⊙ x·W_upᵀ) · W_downᵀ, with an optional norm over F before W_down (§7.5, §7.6). */
export function swiglu(x: tf.Tensor, params: Params, prefix: string, subNorm?: Apply): tf.Tensor {
  const gate = linear(x, params[`${prefix}.gate_proj.weight`]!);
  const up = linear(x, params[`${prefix}.up_proj.weight`]!);
  const hidden = gatedSilu(gate, up);
  return linear(subNorm ? subNorm(hidden) : hidden, params[`${prefix}.down_proj.weight`]!);
}
