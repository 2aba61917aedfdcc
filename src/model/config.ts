// The model config of MODEL.md §1 and §7.1: one plain object, the same in
// YAML configs, checkpoints' config.json and the reference cases.

export const STRATEGIES = [
  'pre', 'post', 'mix', 'lns', 'peri', 'sandwich', 'deepnorm',
  'hybridnorm', 'hybridnorm_star', 'dyt', 'none', 'ngpt', 'normformer', 'subln',
] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const NORM_TYPES = ['rmsnorm', 'layernorm', 'scalenorm'] as const;
export type NormType = (typeof NORM_TYPES)[number];

export const RESIDUAL_SCALES = ['none', 'skipinit', 'layerscale'] as const;
export type ResidualScale = (typeof RESIDUAL_SCALES)[number];

export const INIT_SCHEMES = ['normal', 'scaled', 'depth_scaled', 'lir', 'small'] as const;
export type InitScheme = (typeof INIT_SCHEMES)[number];

/** Strategies GPAS wraps (MODEL.md §7.4): the pre family around the residual sum, the post family on the residual copy. */
export const GPAS_STRATEGIES: readonly Strategy[] = ['pre', 'post', 'mix', 'lns', 'peri', 'sandwich', 'deepnorm'];

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
  /** σ of the N(0, σ²) initialization (MODEL.md §3, §7.9). */
  init_std: number;
  gpas: boolean;
  /** Training only: clip norm of the GPAS gates' gradient after the global clip; 0 = off. */
  gpas_gate_clip: number;
  normformer_resid_scale: boolean;
  residual_scale: ResidualScale;
  /** null means the rule of MODEL.md §7.8. */
  residual_scale_init: number | null;
  init: InitScheme;
  tvr: boolean;
  tvr_interval: number;
  tvr_threshold: number;
  tvr_target_std: number;
  tvr_scale_with_depth: boolean;
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
  gpas: false,
  gpas_gate_clip: 0,
  normformer_resid_scale: false,
  residual_scale: 'none',
  residual_scale_init: null,
  init: 'normal',
  tvr: false,
  tvr_interval: 50,
  tvr_threshold: 1.2,
  tvr_target_std: 0.01,
  tvr_scale_with_depth: false,
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
  if (c.norm === 'ngpt') checkNgpt(c);
  if (c.gpas && !GPAS_STRATEGIES.includes(c.norm)) {
    throw new ModelConfigError('gpas', `gpas applies to ${GPAS_STRATEGIES.join(', ')}, not to norm: ${c.norm}`);
  }
  if (c.normformer_resid_scale && c.norm !== 'normformer') {
    throw new ModelConfigError('normformer_resid_scale', `normformer_resid_scale needs norm: normformer, not ${c.norm}`);
  }
}

/** nGPT normalizes everything itself and owns its weights (MODEL.md §7.1, §7.3). */
function checkNgpt(c: ModelConfig): void {
  const conflicts: [keyof ModelConfig, boolean][] = [
    ['qk_norm', c.qk_norm], ['embed_norm', c.embed_norm === true], ['gpas', c.gpas],
    ['residual_scale', c.residual_scale !== 'none'], ['tvr', c.tvr], ['init', c.init !== 'normal'],
  ];
  for (const [key, conflicting] of conflicts) {
    if (conflicting) throw new ModelConfigError(key, `${key}: ${JSON.stringify(c[key])} cannot be used with norm: ngpt (it normalizes hidden states and weights itself)`);
  }
}

export function usesEmbedNorm(c: ModelConfig): boolean {
  return c.embed_norm ?? c.norm === 'peri';
}
