// Norm modules of MODEL.md §2.3, each reading its parameters under one key prefix.
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.ts';
import { hasKernel, runFused } from './fused.ts';

export type Params = Record<string, tf.Tensor>;
export type NormKind = 'rmsnorm' | 'layernorm' | 'scalenorm' | 'dyt' | 'identity';
export type Apply = (x: tf.Tensor) => tf.Tensor;

/** The norm every slot of this config uses: DyT replaces all of them, `none` and `ngpt` have none. */
export function normKind(cfg: ModelConfig): NormKind {
  if (cfg.norm === 'dyt') return 'dyt';
  if (cfg.norm === 'none' || cfg.norm === 'ngpt') return 'identity';
  return cfg.norm_type;
}

/** Parameter names and shapes of one norm module of width n. */
export function normParamShapes(kind: NormKind, prefix: string, n: number): [string, number[]][] {
  switch (kind) {
    case 'rmsnorm': return [[`${prefix}.weight`, [n]]];
    case 'layernorm': return [[`${prefix}.weight`, [n]], [`${prefix}.bias`, [n]]];
    case 'scalenorm': return [[`${prefix}.weight`, [1]]];
    case 'dyt': return [[`${prefix}.weight`, [n]], [`${prefix}.bias`, [n]], [`${prefix}.alpha`, [1]]];
    case 'identity': return [];
  }
}

export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  if (hasKernel('NormlabRMSNorm')) return runFused('NormlabRMSNorm', { x, weight }, { eps });
  return x.mul(x.square().mean(-1, true).add(eps).rsqrt()).mul(weight);
}

export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const centered = x.sub(x.mean(-1, true));
  const variance = centered.square().mean(-1, true); // biased, as torch.nn.LayerNorm
  return centered.mul(variance.add(eps).rsqrt()).mul(weight).add(bias);
}

/** ScaleNorm (Transformers without Tears): g · x / max(‖x‖₂, ε), g one learnable scalar. */
export function scaleNorm(x: tf.Tensor, gain: tf.Tensor, eps: number): tf.Tensor {
  return x.mul(gain).div(tf.maximum(x.square().sum(-1, true).sqrt(), eps));
}

/** x / ‖x‖₂ over the last axis, with no ε (nGPT's "justnorm", MODEL.md §7.2). */
export function unit(x: tf.Tensor): tf.Tensor {
  return x.mul(x.square().sum(-1, true).rsqrt());
}

export function dyt(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, alpha: tf.Tensor): tf.Tensor {
  return x.mul(alpha).tanh().mul(weight).add(bias);
}

/** The norm module stored under `prefix`, as a function of its input. */
export function normModule(kind: NormKind, params: Params, prefix: string, eps: number): Apply {
  const p = (name: string) => {
    const t = params[`${prefix}.${name}`];
    if (!t) throw new Error(`missing parameter ${prefix}.${name}`);
    return t;
  };
  switch (kind) {
    case 'rmsnorm': return (x) => rmsNorm(x, p('weight'), eps);
    case 'layernorm': return (x) => layerNorm(x, p('weight'), p('bias'), eps);
    case 'scalenorm': return (x) => scaleNorm(x, p('weight'), eps);
    case 'dyt': return (x) => dyt(x, p('weight'), p('bias'), p('alpha'));
    case 'identity': return (x) => x;
  }
}
