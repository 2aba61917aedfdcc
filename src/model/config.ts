// The model config of MODEL.md §1 and §7.1: one plain object, the same in
// YAML configs, checkpoints' config.json and the reference cases.

export const STRATEGIES = [
  'pre', 'post', 'mix', 'lns', 'peri', 'sandwich', 'deepnorm',
  'hybridnorm', 'hybridnorm_star', 'dyt', 'none',
] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const NORM_TYPES = ['rmsnorm', 'layernorm'] as const;
export type NormType = (typeof NORM_TYPES)[number];

export interface ModelConfig {
  vocab_size: number;
  d_model: number;
  n_layers: number;
  n_heads: number;
  ffn_dim: number;
  norm: Strategy;
  norm_type: NormType;
  norm_eps: number;
  rope_theta: number;
  mix_alpha: number;
  qk_norm: boolean;
  /** null means the strategy's default (on for `peri`, off otherwise). */
  embed_norm: boolean | null;
  dyt_alpha_init: number;
  /** σ of the N(0, σ²) initialization (MODEL.md §3). */
  init_std: number;
}

export const MODEL_DEFAULTS: Omit<ModelConfig, 'd_model' | 'n_layers' | 'n_heads' | 'ffn_dim'> = {
  vocab_size: 32000,
  norm: 'pre',
  norm_type: 'rmsnorm',
  norm_eps: 1e-6,
  rope_theta: 10000,
  mix_alpha: 0.25,
  qk_norm: false,
  embed_norm: null,
  dyt_alpha_init: 0.5,
  init_std: 0.02,
};

/** A problem with one config field: `key` is the field, `message` what was expected. */
export class ModelConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(message);
  }
}

/** Cross-field rules of MODEL.md §1 and §3; single-field types are the schema's job. */
export function checkModelConfig(c: ModelConfig): void {
  if (c.d_model % c.n_heads !== 0) {
    throw new ModelConfigError('n_heads', `d_model ${c.d_model} must be divisible by n_heads ${c.n_heads}`);
  }
  if ((c.d_model / c.n_heads) % 2 !== 0) {
    throw new ModelConfigError('n_heads', `head_dim d_model/n_heads = ${c.d_model / c.n_heads} must be even for RoPE`);
  }
  if (c.mix_alpha < 0 || c.mix_alpha > 1) {
    throw new ModelConfigError('mix_alpha', `mix_alpha must lie in [0, 1], got ${c.mix_alpha}`);
  }
  if (c.norm === 'none' && c.qk_norm) {
    throw new ModelConfigError('qk_norm', "qk_norm cannot be used with norm: none (it has no norm modules)");
  }
  if (c.norm === 'none' && c.embed_norm === true) {
    throw new ModelConfigError('embed_norm', "embed_norm cannot be used with norm: none (it has no norm modules)");
  }
}

export function usesEmbedNorm(c: ModelConfig): boolean {
  return c.embed_norm ?? c.norm === 'peri';
}
