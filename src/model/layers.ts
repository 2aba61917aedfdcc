// Attention with RoPE and SwiGLU feed-forward (MODEL.md §2.1, §2.2).
import * as tf from '@tensorflow/tfjs';
import type { Apply, Params } from './norms.ts';

/** y = x · Wᵀ for x [..., in] and W [out, in] (PyTorch layout). */
export function linear(x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
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

export interface AttentionNorms {
  q?: Apply;
  k?: Apply;
  v?: Apply;
}

/** Causal self-attention of one block; `prefix` is `model.layers.{i}.self_attn`. */
export function attention(
  x: tf.Tensor, params: Params, prefix: string, nHeads: number,
  tables: RopeTables, mask: tf.Tensor2D, norms: AttentionNorms,
): tf.Tensor {
  const [B, T, d] = x.shape as [number, number, number];
  const hd = d / nHeads;
  const heads = (name: string, norm?: Apply) => {
    const y = linear(x, params[`${prefix}.${name}_proj.weight`]!).reshape([B, T, nHeads, hd]);
    return (norm ? norm(y) : y).transpose([0, 2, 1, 3]); // [B, H, T, hd]
  };
  const q = rope(heads('q', norms.q), tables);
  const k = rope(heads('k', norms.k), tables);
  const v = heads('v', norms.v);
  const scores = tf.matMul(q, k, false, true).div(Math.sqrt(hd)).add(mask);
  const o = tf.matMul(tf.softmax(scores), v).transpose([0, 2, 1, 3]).reshape([B, T, d]);
  return linear(o, params[`${prefix}.o_proj.weight`]!);
}

/** SwiGLU: (SiLU(x·W_gateᵀ) ⊙ x·W_upᵀ) · W_downᵀ; `prefix` is `model.layers.{i}.mlp`. */
export function swiglu(x: tf.Tensor, params: Params, prefix: string): tf.Tensor {
  const gate = linear(x, params[`${prefix}.gate_proj.weight`]!);
  const up = linear(x, params[`${prefix}.up_proj.weight`]!);
  return linear(gate.mul(gate.sigmoid()).mul(up), params[`${prefix}.down_proj.weight`]!);
}
