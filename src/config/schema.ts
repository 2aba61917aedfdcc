// The run config YAML as zod schemas: unknown keys are errors at every level,
// single-field rules live here, cross-field model rules in checkModelConfig.
import { z } from 'zod';
import { INIT_SCHEMES, NORM_TYPES, RESIDUAL_SCALES, STRATEGIES, type ModelConfig } from '../model/config.ts';
import { PRESET_NAMES } from './presets.ts';

const num = () => z.number().finite();
const positive = () => num().gt(0);
const posInt = () => z.number().int().min(1);
/** A count or cadence where 0 means "never". */
const count = () => z.number().int().min(0);

/** Every ModelConfig field, typed against the interface so the two cannot drift apart. */
const modelFields = {
  vocab_size: posInt(),
  d_model: posInt(),
  n_layers: posInt(),
  n_heads: posInt(),
  ffn_dim: posInt(),
  norm: z.enum(STRATEGIES),
  norm_type: z.enum(NORM_TYPES),
  norm_eps: positive(),
  rope_theta: positive(),
  mix_alpha: num(),
  qk_norm: z.boolean(),
  embed_norm: z.boolean().nullable(),
  dyt_alpha_init: num(),
  init_std: positive(),
  gpas: z.boolean(),
  gpas_gate_clip: num().min(0),
  normformer_resid_scale: z.boolean(),
  residual_scale: z.enum(RESIDUAL_SCALES),
  residual_scale_init: positive().nullable(),
  init: z.enum(INIT_SCHEMES),
  tvr: z.boolean(),
  tvr_interval: posInt(),
  tvr_threshold: positive(),
  tvr_target_std: positive(),
  tvr_scale_with_depth: z.boolean(),
} satisfies { [K in keyof ModelConfig]-?: z.ZodType<ModelConfig[K]> };

/** The model once preset and defaults are merged in: every field present. */
export const modelSchema = z.object(modelFields).strict();

/** The `model:` section as written: an optional preset, any field overriding it. */
const modelInputSchema = z
  .object({ preset: z.enum(PRESET_NAMES as [string, ...string[]]).optional() })
  .merge(z.object(modelFields).partial())
  .strict();

const trainSchema = z
  .object({
    steps: posInt().default(1000),
    batch_size: posInt().default(8),
    seq_len: posInt().default(128),
    lr: positive().default(1e-3),
    /** At most `steps`; absent: min(100, steps), so a short run needs no warm-up edit. */
    warmup_steps: count().optional(),
    /** Floor of the cosine decay, as a fraction of lr. */
    min_lr_ratio: num().min(0).max(1).default(0.1),
    beta1: num().min(0).lt(1).default(0.9),
    beta2: num().min(0).lt(1).default(0.95),
    eps: positive().default(1e-8),
    /** AdamW decoupled decay, applied to weights with ≥ 2 dimensions only. */
    weight_decay: num().min(0).default(0),
    /** Global gradient-norm clip; 0 = off. */
    grad_clip: num().min(0).default(1.0),
    seed: count().default(0),
    eval_every: posInt().default(100),
    eval_batches: posInt().default(8),
    log_every: posInt().default(1),
    /** Per-layer diagnostics cadence; 0 = never. */
    diag_every: count().default(10),
    /** 0 = never. */
    checkpoint_every: count().default(100),
    keep_checkpoints: posInt().default(2),
  })
  .strict();

export const CORPORA = ['brown'] as const;
export const TOKENIZERS = ['byte', 'gpt2'] as const;
export type Tokenizer = (typeof TOKENIZERS)[number];

/** Token ids each tokenizer can emit; the model's vocab_size must cover them. */
export const TOKENIZER_VOCAB: Record<Tokenizer, number> = { byte: 256, gpt2: 50257 };

const dataSchema = z
  .object({
    corpus: z.enum(CORPORA).default('brown'),
    tokenizer: z.enum(TOKENIZERS).default('byte'),
    /** Fraction of the corpus held out for validation. */
    val_fraction: num().gt(0).lt(1).default(0.05),
    /** `packed`: documents concatenated and cut into seq_len + 1 windows. */
    batching: z.enum(['packed']).default('packed'),
  })
  .strict();

const outputSchema = z
  .object({
    runs_dir: z.string().min(1).default('runs'),
    /** Absent: `<runs_dir>/normlab.sqlite`. */
    db: z.string().min(1).optional(),
  })
  .strict();

/** The YAML as written, before the preset is merged. */
export const runConfigInputSchema = z
  .object({
    name: z.string().min(1).optional(),
    model: modelInputSchema,
    train: trainSchema.default({}),
    data: dataSchema.default({}),
    output: outputSchema.default({}),
  })
  .strict();

export type RunConfigInput = z.output<typeof runConfigInputSchema>;
export type TrainConfig = Omit<z.output<typeof trainSchema>, 'warmup_steps'> & { warmup_steps: number };
export type DataConfig = z.output<typeof dataSchema>;
export interface OutputConfig {
  runs_dir: string;
  db: string;
}

/**
 * A resolved run config: every default filled in, the preset merged into
 * `model` and recorded in `model_preset` (informational: it is not hashed,
 * since `model` already holds every field it set).
 */
export interface RunConfig {
  name: string;
  model_preset?: string;
  model: ModelConfig;
  train: TrainConfig;
  data: DataConfig;
  output: OutputConfig;
}

/** The keys the input schema accepts at a dotted path, or null where it expects no mapping. */
export function keysAt(path: readonly string[]): string[] | null {
  let t: z.ZodTypeAny | undefined = runConfigInputSchema;
  for (const seg of path) {
    t = asObject(t)?.shape[seg];
  }
  const obj = asObject(t);
  return obj ? Object.keys(obj.shape) : null;
}

// Sections are objects, some wrapped in .default({}).
function asObject(t: z.ZodTypeAny | undefined): z.AnyZodObject | null {
  const inner = t instanceof z.ZodDefault ? t.removeDefault() : t;
  return inner instanceof z.ZodObject ? inner : null;
}
