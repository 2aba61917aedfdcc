// The run config YAML as zod schemas: unknown keys are errors at every level,
// single-field rules live here, cross-field model rules in checkModelConfig.
import { z } from 'zod';
import { INIT_SCHEMES, NORM_TYPES, RESIDUAL_SCALES, STRATEGIES, type ModelConfig } from '../model/config.ts';
import { PRESET_NAMES } from './presets.ts';
import { CORPUS_NAMES } from '../data/sources.ts';
import { TOKENIZER_INFO, TOKENIZER_NAMES, type TokenizerName } from '../data/tokenizers.ts';

const num = () => z.number().finite();
const positive = () => num().gt(0);
/**
 * No count of a config exceeds int32 (byte sizes aside): anything larger (`steps: 1e300`) is a typo
 * that would hang or exhaust memory long before it could mean something.
 */
export const MAX_CONFIG_INT = 2 ** 31 - 1;
const posInt = () => z.number().int().min(1).max(MAX_CONFIG_INT);
/** A count or cadence where 0 means "never". */
const count = () => z.number().int().min(0).max(MAX_CONFIG_INT);

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

export const PRECISIONS = ['fp32', 'tf32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

const trainSchema = z
  .object({
    /** A billion steps at most: beyond any run's budget. */
    steps: z.number().int().min(1).max(1e9).default(1000),
    batch_size: posInt().default(8),
    /** Rows per forward/backward pass; the step accumulates batch_size / micro_batch_size of them. Absent: the whole batch. */
    micro_batch_size: posInt().optional(),
    /** Arithmetic of the products (fp32, tf32, bf16 mixed precision); absent: bf16 on CUDA, fp32 elsewhere (src/train/precision.ts). */
    precision: z.enum(PRECISIONS).optional(),
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
    /** A training loss above this marks the run diverged; null = 3·ln(vocab_size), three times a uniform guess. */
    diverge_loss: positive().nullable().default(null),
    /** Global gradient-norm clip; 0 = off. */
    grad_clip: num().min(0).default(1.0),
    seed: count().default(0),
    eval_every: posInt().default(100),
    eval_batches: posInt().default(8),
    log_every: posInt().default(1),
    /** Per-layer diagnostics cadence, plus step 1 (the gradients at initialization); 0 = never. */
    diag_every: count().default(10),
    /** Cadence of the cheap layer analyses (angular, variance, massive, cosine) on a validation batch; 0 = never. */
    analyze_every: count().default(0),
    /** 0 = never. */
    checkpoint_every: count().default(100),
    keep_checkpoints: posInt().default(2),
    /** Tensor bytes per safetensors file above which checkpoints are sharded as Hugging Face does (5 GB, transformers' default). */
    checkpoint_shard_size: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(5_000_000_000),
    /** When the disk cannot hold the next checkpoint: `stop` (the previous checkpoint intact) or `keep_training` to the next chance. */
    on_checkpoint_no_space: z.enum(['stop', 'keep_training']).default('stop'),
  })
  .strict()
  .refine((t) => t.micro_batch_size === undefined || t.batch_size % t.micro_batch_size === 0, {
    path: ['micro_batch_size'],
    message: 'must divide train.batch_size (each step sums batch_size / micro_batch_size equal micro-batches)',
  });

/** Token ids each tokenizer can emit; the model's vocab_size must cover them. */
export const TOKENIZER_VOCAB = Object.fromEntries(
  TOKENIZER_NAMES.map((t) => [t, TOKENIZER_INFO[t].vocabSize]),
) as Record<TokenizerName, number>;

const dataSchema = z
  .object({
    /** An embedded corpus (no download); used when `source` is absent. */
    corpus: z.enum(CORPUS_NAMES as [string, ...string[]]).default('brown'),
    /** Instead of corpus: files, folders or globs (prepared on first use and cached), or one prepared dataset folder. */
    source: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    /** Validation files or globs (C4's c4-validation.*.json.gz); exact copies of training documents are dropped from them. Absent: a hash split of the sources by val_fraction. */
    val_source: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    /** Validation tokens each evaluation scores: the split's first documents, the same for every run of a study (absent: train.eval_batches batches). */
    eval_tokens: posInt().optional(),
    /** The JSON-lines field holding the text (absent: C4's `text`). */
    text_field: z.string().min(1).optional(),
    /** byte, gpt2, llama, t5 (from the local Hugging Face cache), or a tokenizer.json / a folder holding one (relative: to the config's folder). */
    tokenizer: z.string().min(1).default('byte'),
    /** The end-of-document token of a tokenizer.json whose files do not name one. */
    eos_token: z.string().min(1).optional(),
    /** Fraction of the documents held out for validation. */
    val_fraction: num().gt(0).lt(1).default(0.05),
    /** Seed of the train/val split by document (absent: 0, so every run of a study scores on the same documents). */
    split_seed: count().optional(),
    /** Count and skip source lines that do not parse, instead of stopping at the first. */
    skip_bad_lines: z.boolean().optional(),
    /**
     * `packed`: documents concatenated and cut into seq_len + 1 windows;
     * `truncate`: each document's first seq_len + 1 tokens, padded, padding out of the loss (the papers' recipe).
     */
    batching: z.enum(['packed', 'truncate']).default('packed'),
  })
  .strict();

const outputSchema = z
  .object({
    runs_dir: z.string().min(1).default('runs'),
    /** Absent: `<runs_dir>/normlab.sqlite`. */
    db: z.string().min(1).optional(),
    /** Also write TensorBoard event files into the run's folder as training logs metrics. */
    tensorboard: z.boolean().default(false),
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
  /** TensorBoard events written live into the run's folder; absent: none. */
  tensorboard?: boolean;
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

// Sections are objects, some wrapped in .default({}) or a cross-key .refine().
function asObject(t: z.ZodTypeAny | undefined): z.AnyZodObject | null {
  let inner = t instanceof z.ZodDefault ? t.removeDefault() : t;
  if (inner instanceof z.ZodEffects) inner = inner.innerType();
  return inner instanceof z.ZodObject ? inner : null;
}
