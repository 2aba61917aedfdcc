// Checkpoints: weights as safetensors with a Hugging Face config.json beside
// them, optimizer moments, and the training state (step, data position,
// checksums of every file and of the state itself). Written into a temporary
// folder that is renamed into place, so a folder named step-N is always
// complete. Tensors stream to and from disk one at a time (model/safetensors.ts),
// sharded like Hugging Face above train.checkpoint_shard_size.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { canonicalJson } from '../config/hash.ts';
import { type ModelConfig, usesEmbedNorm } from '../model/config.ts';
import { tokenizerFiles } from '../data/hf.ts';
import type { AnyTokenizerInfo } from '../data/tokenizers.ts';
import type { Params } from '../model/norms.ts';
import { faultPoint, freeSpaceFault } from './faults.ts';
import {
  fileSha256, type NamedArray, SafetensorsError, shardedSize, shardFiles, streamSafetensors, type TensorSource, writeFileDurably, writeSharded,
} from '../model/safetensors.ts';

export interface TrainingState {
  step: number;
  optimizerStep: number;
  dataPosition: unknown;
  configHash: string;
}

/** A loaded checkpoint: tensors on the current backend, owned by the caller. */
export interface Checkpoint {
  dir: string;
  state: TrainingState;
  params: Params;
  /** Absent when only the weights were asked for. */
  moments?: { m: Params; v: Params };
}

/** A checkpoint that cannot be used (missing, corrupt); bad input to analyze and sample. */
export class CheckpointError extends Error {
  readonly exitCode = 2;
}

/** A checkpoint that could not be written (a full disk, say); the previous one is untouched. */
export class CheckpointWriteError extends Error {
  readonly exitCode = 1;

  constructor(readonly dir: string, readonly previous: string | undefined, override readonly cause: Error) {
    const full = (cause as NodeJS.ErrnoException).code === 'ENOSPC';
    super(`could not write checkpoint ${dir}: ${cause.message}${full ? ' (the disk is full)' : ''}; ` +
      (previous ? `the previous checkpoint ${previous} is intact` : 'no earlier checkpoint exists') +
      `. ${full || cause instanceof NoSpaceError ? 'Free space' : 'Fix that'}, then resume the run (normlab train --resume <run>).`);
  }
}

/** The free-space check refused a checkpoint before anything was written. */
class NoSpaceError extends Error {}

/** What saveCheckpoint does when the disk cannot hold the checkpoint (train.on_checkpoint_no_space). */
export type NoSpacePolicy = 'stop' | 'keep_training';

export interface SaveOptions {
  /** Checkpoints kept after this one is written. */
  keep: number;
  /** Tensor data per safetensors file above which the files are sharded. */
  shardBytes: number;
  onNoSpace: NoSpacePolicy;
  /** The tokenizer the run trains with: its ids go into config.json and generation_config.json. */
  tokenizer: AnyTokenizerInfo;
  /** Extra small files saved beside the weights and checksummed (tokenizer files, say). */
  files?: Record<string, Uint8Array | string>;
  warn?: (message: string) => void;
  /** Largest positional write or read; small only in tests. */
  chunkBytes?: number;
}

const STEP_DIR = /^step-(\d+)$/;
const STATE = 'state.json';
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');
const GB = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

/**
 * Whether the model computes exactly what Hugging Face's LlamaForCausalLM does:
 * Pre-LN with RMSNorm and nothing that changes the forward pass (TVR and the
 * init schemes only change the weights' values).
 */
export function isHuggingFaceLlama(cfg: ModelConfig): boolean {
  return cfg.norm === 'pre' && cfg.norm_type === 'rmsnorm' && !cfg.qk_norm && !usesEmbedNorm(cfg) && !cfg.gpas && cfg.residual_scale === 'none';
}

/**
 * config.json: Hugging Face's LlamaConfig fields, claiming LlamaForCausalLM only
 * for an exact Llama; any other model is NormlabForCausalLM (model_type
 * `normlab`, which no library maps to Llama), with the full normlab config.
 */
export function huggingFaceConfig(cfg: ModelConfig, maxPositions: number, tokenizer?: AnyTokenizerInfo): Record<string, unknown> {
  const llama = isHuggingFaceLlama(cfg);
  return {
    architectures: [llama ? 'LlamaForCausalLM' : 'NormlabForCausalLM'],
    model_type: llama ? 'llama' : 'normlab',
    vocab_size: cfg.vocab_size,
    hidden_size: cfg.d_model,
    intermediate_size: cfg.ffn_dim,
    num_hidden_layers: cfg.n_layers,
    num_attention_heads: cfg.n_heads,
    num_key_value_heads: cfg.n_heads,
    hidden_act: 'silu',
    rms_norm_eps: cfg.norm_eps,
    rope_theta: cfg.rope_theta,
    max_position_embeddings: maxPositions,
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: 'float32',
    ...(tokenizer && specialIds(tokenizer)),
    normlab: cfg,
  };
}

/** Documents end with the tokenizer's end id; training never sees a BOS, so a document starts after that id too. */
function specialIds(tokenizer: AnyTokenizerInfo) {
  return { bos_token_id: tokenizer.eot, eos_token_id: tokenizer.eot, pad_token_id: tokenizer.pad };
}

/** generation_config.json: the special ids and which tokenizer the model was trained with. */
export function generationConfig(tokenizer: AnyTokenizerInfo): Record<string, unknown> {
  // A tokenizer file travels with the checkpoint: its name is then the copy beside this file.
  const name = tokenizer.file ? 'tokenizer.json' : tokenizer.name;
  const file = tokenizer.file && { source: tokenizer.name, sha256: tokenizer.file.sha256 };
  return { ...specialIds(tokenizer), normlab_tokenizer: { name, vocab_size: tokenizer.vocabSize, add_bos_token: false, ...file } };
}

/** Tensors as the writer takes them: values fetched from the backend one tensor at a time. */
function sources(tensors: Params, prefix = ''): [string, TensorSource][] {
  return Object.entries(tensors).map(([key, t]) => [prefix + key, { shape: t.shape, values: async () => (await t.data()) as Float32Array }]);
}

/** Removes folders of checkpoint writes that a crash interrupted. */
export function removeUnfinishedCheckpoints(checkpointsDir: string): string[] {
  if (!existsSync(checkpointsDir)) return [];
  const unfinished = readdirSync(checkpointsDir).filter((name) => name.includes('.tmp-'));
  for (const name of unfinished) rmSync(join(checkpointsDir, name), { recursive: true, force: true });
  return unfinished;
}

export function stepDirs(checkpointsDir: string): { step: number; dir: string }[] {
  if (!existsSync(checkpointsDir)) return [];
  return readdirSync(checkpointsDir)
    .map((name) => ({ name, match: STEP_DIR.exec(name) }))
    .filter((e) => e.match)
    .map((e) => ({ step: Number(e.match![1]), dir: join(checkpointsDir, e.name) }))
    .sort((a, b) => b.step - a.step);
}

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

/**
 * Refuses a checkpoint the disk cannot hold: at steady state the folder holds
 * `keep` checkpoints plus the one being written, so that much must fit beside
 * what the existing checkpoints already take.
 */
function checkFreeSpace(checkpointsDir: string, bytes: number, keep: number): void {
  const existing = stepDirs(checkpointsDir).slice(0, keep).reduce((sum, c) => sum + folderBytes(c.dir), 0);
  const needed = Math.max(bytes, bytes * (keep + 1) - existing);
  const { bavail, bsize } = statfsSync(checkpointsDir);
  const free = freeSpaceFault() ? 0 : bavail * bsize;
  if (free < needed) {
    throw new NoSpaceError(`not enough free space in ${checkpointsDir}: a checkpoint takes ${GB(bytes)}, and keeping ${keep} ` +
      `(train.keep_checkpoints) plus the one being written needs ${GB(needed)} more, but ${GB(free)} is free`);
  }
}

/**
 * Writes checkpoint step-N. Returns its folder, or undefined when the disk
 * cannot hold it and the policy is to keep training to the next chance.
 */
export async function saveCheckpoint(
  checkpointsDir: string, cfg: ModelConfig, maxPositions: number, params: Params,
  moments: { m: Params; v: Params }, state: TrainingState, opts: SaveOptions,
): Promise<string | undefined> {
  mkdirSync(checkpointsDir, { recursive: true });
  const final = join(checkpointsDir, `step-${String(state.step).padStart(8, '0')}`);
  const tmp = `${final}.tmp-${process.pid}`;
  const previous = stepDirs(checkpointsDir)[0]?.dir;
  const model = new Map(sources(params));
  const optimizer = new Map([...sources(moments.m, 'exp_avg.'), ...sources(moments.v, 'exp_avg_sq.')]);
  const shapes = (m: Map<string, TensorSource>) => new Map([...m].map(([k, t]) => [k, t.shape]));
  const bytes = shardedSize(shapes(model), 'model', opts.shardBytes) + shardedSize(shapes(optimizer), 'optimizer', opts.shardBytes) + (1 << 20);
  try {
    checkFreeSpace(checkpointsDir, bytes, opts.keep);
  } catch (e) {
    if (!(e instanceof NoSpaceError) || opts.onNoSpace === 'stop') throw new CheckpointWriteError(final, previous, e as Error);
    opts.warn?.(`skipped checkpoint ${final}: ${(e as Error).message}; training on (train.on_checkpoint_no_space: keep_training)`);
    return undefined;
  }
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const { tokenizer } = opts;
    const files = {
      'config.json': JSON.stringify(huggingFaceConfig(cfg, maxPositions, tokenizer), null, 2),
      'generation_config.json': JSON.stringify(generationConfig(tokenizer), null, 2),
      ...tokenizerFiles(tokenizer),
      ...opts.files,
    };
    const write = { shardBytes: opts.shardBytes, chunkBytes: opts.chunkBytes };
    const checksums = await writeSharded(tmp, 'model', model, { ...write, metadata: { format: 'pt' } });
    faultPoint('checkpoint-write');
    Object.assign(checksums, await writeSharded(tmp, 'optimizer', optimizer, write));
    faultPoint('checkpoint-write');
    Object.assign(checksums, writeSmallFiles(tmp, files));
    faultPoint('checkpoint-write');
    writeFileDurably(join(tmp, STATE), stateJson({ ...state, checksums }));
    faultPoint('checkpoint-rename');
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new CheckpointWriteError(final, previous, e as Error);
  }
  for (const old of stepDirs(checkpointsDir).slice(opts.keep)) rmSync(old.dir, { recursive: true, force: true });
  return final;
}

function writeSmallFiles(dir: string, files: Record<string, Uint8Array | string>): Record<string, string> {
  for (const [name, bytes] of Object.entries(files)) writeFileDurably(join(dir, name), bytes);
  return Object.fromEntries(Object.entries(files).map(([name, bytes]) => [name, sha256(bytes)]));
}

/** state.json with `state_sha256`, the sha256 of the canonical JSON of everything else in it. */
function stateJson(state: Record<string, unknown>): string {
  return JSON.stringify({ ...state, state_sha256: sha256(canonicalJson(state)) }, null, 2);
}

type SavedState = TrainingState & { checksums: Record<string, string> };

/**
 * Reads state.json and checks its own checksum, so an edited step or checksum is a
 * corrupt checkpoint. One written before state_sha256 existed (an older normlab) has
 * none: it is accepted with a warning, its files still checked against its checksums.
 */
function readState(dir: string, warn: (message: string) => void): SavedState {
  const file = join(dir, STATE);
  if (!existsSync(file)) throw new CheckpointError(`${file}: missing`);
  let parsed: SavedState & { state_sha256?: string };
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new CheckpointError(`${file}: not valid JSON`);
  }
  const { state_sha256: expected, ...state } = parsed ?? {};
  if (expected === undefined) {
    warn(`${file} has no state_sha256 (written by an older normlab): its step and data position cannot be verified`);
  } else if (typeof expected !== 'string' || sha256(canonicalJson(state)) !== expected) {
    throw new CheckpointError(`${file}: checksum mismatch (the state was edited or corrupted)`);
  }
  if (!state.checksums || typeof state.checksums !== 'object') throw new CheckpointError(`${file}: lists no checksums`);
  return state;
}

/** The state's checksum of one file, which it must list. */
function expectedSum(dir: string, state: SavedState, name: string): string {
  const sum = state.checksums[name];
  if (sum === undefined) throw new CheckpointError(`${join(dir, name)}: not covered by the checksums in ${STATE}`);
  if (!existsSync(join(dir, name))) throw new CheckpointError(`${join(dir, name)}: missing`);
  return sum;
}

function readSmallFile(dir: string, state: SavedState, name: string): Buffer {
  const expected = expectedSum(dir, state, name);
  const bytes = readFileSync(join(dir, name));
  if (sha256(bytes) !== expected) throw new CheckpointError(`${join(dir, name)}: checksum mismatch (file truncated or corrupted)`);
  return bytes;
}

/**
 * Streams `base`'s tensors (one file, or the shards its index lists) into
 * `visit`, verifying each file's checksum. A file that does not parse is
 * reported as a checksum mismatch when its bytes disagree with state.json.
 */
function readTensorFiles(dir: string, state: SavedState, base: string, visit: (key: string, t: NamedArray) => void, chunkBytes?: number): void {
  const indexName = `${base}.safetensors.index.json`;
  const sharded = indexName in state.checksums;
  const { files, index } = shardFiles(sharded ? indexName : undefined, base, (name) => readSmallFile(dir, state, name).toString('utf8'));
  for (const name of files) {
    const file = join(dir, name);
    const expected = expectedSum(dir, state, name);
    let read: { sha256: string; keys: string[] };
    try {
      read = streamSafetensors(file, visit, chunkBytes);
    } catch (e) {
      if (e instanceof SafetensorsError && fileSha256(file) !== expected) throw new CheckpointError(`${file}: checksum mismatch (file truncated or corrupted)`);
      throw e;
    }
    if (read.sha256 !== expected) throw new CheckpointError(`${file}: checksum mismatch (file truncated or corrupted)`);
    const listed = index && Object.entries(index.weight_map).filter(([, f]) => f === name).map(([k]) => k).sort();
    if (listed && canonicalJson(listed) !== canonicalJson([...read.keys].sort())) throw new CheckpointError(`${file}: its tensors differ from ${indexName}'s weight_map`);
  }
}

/**
 * A backend tensor of a just-read array, on the backend's own memory now:
 * backends that defer copying JS values (torch) would otherwise keep every
 * array alive until first use, holding a second copy of the checkpoint.
 */
function toBackend(t: NamedArray): tf.Tensor {
  const lazy = tf.tensor(t.data, t.shape);
  try {
    return tf.tidy(() => tf.mul(lazy, 1));
  } finally {
    lazy.dispose();
  }
}

/**
 * Reads one checkpoint folder straight into backend tensors, verifying every
 * file it reads against state.json. `optimizer: false` (analyze, sample) reads
 * and checks only the weights. On any failure the tensors loaded so far are disposed.
 * `warn` (default: stderr) hears of a state.json an older normlab wrote without its own checksum.
 */
export function loadCheckpoint(dir: string, opts: { optimizer?: boolean; chunkBytes?: number; warn?: (message: string) => void } = {}): Checkpoint {
  const state = readState(dir, opts.warn ?? ((message) => console.error(`normlab: warning: ${message}`)));
  const params: Params = {};
  const m: Params = {};
  const v: Params = {};
  try {
    readSmallFile(dir, state, 'config.json');
    readTensorFiles(dir, state, 'model', (key, t) => { params[key] = toBackend(t); }, opts.chunkBytes);
    if (opts.optimizer === false) return { dir, state, params };
    readTensorFiles(dir, state, 'optimizer', (key, t) => {
      const [into, name] = key.startsWith('exp_avg_sq.') ? [v, key.slice(11)] : key.startsWith('exp_avg.') ? [m, key.slice(8)] : [];
      if (!into) throw new CheckpointError(`${join(dir, 'optimizer')}*: unexpected tensor ${key}`);
      into[name!] = toBackend(t);
    }, opts.chunkBytes);
    return { dir, state, params, moments: { m, v } };
  } catch (e) {
    tf.dispose([...Object.values(params), ...Object.values(m), ...Object.values(v)]);
    throw e;
  }
}

/** The newest checkpoint that loads; corrupt ones are reported through `warn` and skipped. */
export function latestGoodCheckpoint(checkpointsDir: string, warn: (message: string) => void): Checkpoint | undefined {
  for (const { dir } of stepDirs(checkpointsDir)) {
    try {
      return loadCheckpoint(dir, { warn });
    } catch (e) {
      if (!(e instanceof CheckpointError || e instanceof SafetensorsError)) throw e;
      warn(`${e.message}; falling back to the previous checkpoint`);
    }
  }
  return undefined;
}
