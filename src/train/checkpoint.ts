// Checkpoints: weights as safetensors with a Hugging Face config.json beside
// them, optimizer moments, and the training state (step, data position,
// checksums). Written into a temporary folder that is renamed into place, so
// a folder named step-N is always complete.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../model/config.ts';
import type { Params } from '../model/norms.ts';
import { faultPoint } from './faults.ts';
import { decodeSafetensors, encodeSafetensors, type NamedArray, SafetensorsError, writeFileDurably } from '../model/safetensors.ts';

export interface TrainingState {
  step: number;
  optimizerStep: number;
  dataPosition: unknown;
  configHash: string;
}

export interface Checkpoint {
  dir: string;
  state: TrainingState;
  params: Map<string, NamedArray>;
  moments: { m: Map<string, NamedArray>; v: Map<string, NamedArray> };
}

export class CheckpointError extends Error {}

/** A checkpoint that could not be written (a full disk, say); the previous one is untouched. */
export class CheckpointWriteError extends Error {
  readonly exitCode = 1;

  constructor(readonly dir: string, readonly previous: string | undefined, override readonly cause: Error) {
    super(`could not write checkpoint ${dir}: ${cause.message}; ` +
      (previous ? `the previous checkpoint ${previous} is intact` : 'no earlier checkpoint exists') +
      '. Free space, then resume the run (normlab train --resume <run>).');
  }
}

const STEP_DIR = /^step-(\d+)$/;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Hugging Face's LlamaConfig fields, so a `pre` checkpoint loads as LlamaForCausalLM. */
export function huggingFaceConfig(cfg: ModelConfig, maxPositions: number): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
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
    normlab: cfg,
  };
}

async function toArrays(tensors: Params, prefix = ''): Promise<Map<string, NamedArray>> {
  const out = new Map<string, NamedArray>();
  for (const [key, t] of Object.entries(tensors)) out.set(prefix + key, { shape: t.shape, data: (await t.data()) as Float32Array });
  return out;
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

export async function saveCheckpoint(
  checkpointsDir: string, cfg: ModelConfig, maxPositions: number, params: Params,
  moments: { m: Params; v: Params }, state: TrainingState, keep: number,
): Promise<string> {
  mkdirSync(checkpointsDir, { recursive: true });
  const final = join(checkpointsDir, `step-${String(state.step).padStart(8, '0')}`);
  const tmp = `${final}.tmp-${process.pid}`;
  const previous = stepDirs(checkpointsDir)[0]?.dir;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    await writeCheckpointFiles(tmp, cfg, maxPositions, params, moments, state);
    faultPoint('checkpoint-rename');
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new CheckpointWriteError(final, previous, e as Error);
  }
  for (const old of stepDirs(checkpointsDir).slice(keep)) rmSync(old.dir, { recursive: true, force: true });
  return final;
}

async function writeCheckpointFiles(
  tmp: string, cfg: ModelConfig, maxPositions: number, params: Params, moments: { m: Params; v: Params }, state: TrainingState,
): Promise<void> {
  const files: Record<string, Uint8Array> = {
    'model.safetensors': encodeSafetensors(await toArrays(params), { format: 'pt' }),
    'optimizer.safetensors': encodeSafetensors(new Map([...await toArrays(moments.m, 'exp_avg.'), ...await toArrays(moments.v, 'exp_avg_sq.')])),
    'config.json': Buffer.from(JSON.stringify(huggingFaceConfig(cfg, maxPositions), null, 2)),
  };
  for (const [name, bytes] of Object.entries(files)) {
    writeFileDurably(join(tmp, name), bytes);
    faultPoint('checkpoint-write');
  }
  const checksums = Object.fromEntries(Object.entries(files).map(([name, bytes]) => [name, sha256(bytes)]));
  writeFileDurably(join(tmp, 'state.json'), JSON.stringify({ ...state, checksums }, null, 2));
}

/** Reads one checkpoint folder, verifying every file against the checksums in its state.json. */
export function loadCheckpoint(dir: string): Checkpoint {
  const read = (name: string) => {
    const file = join(dir, name);
    if (!existsSync(file)) throw new CheckpointError(`${file}: missing`);
    return readFileSync(file);
  };
  let state: TrainingState & { checksums: Record<string, string> };
  try {
    state = JSON.parse(read('state.json').toString('utf8'));
  } catch (e) {
    throw new CheckpointError(e instanceof CheckpointError ? e.message : `${join(dir, 'state.json')}: not valid JSON`);
  }
  const bytes: Record<string, Buffer> = {};
  for (const [name, expected] of Object.entries(state.checksums ?? {})) {
    bytes[name] = read(name);
    if (sha256(bytes[name]!) !== expected) throw new CheckpointError(`${join(dir, name)}: checksum mismatch (file truncated or corrupted)`);
  }
  if (!bytes['model.safetensors'] || !bytes['optimizer.safetensors']) throw new CheckpointError(`${join(dir, 'state.json')}: lists no checksums for the weight files`);
  const params = decodeSafetensors(bytes['model.safetensors'], join(dir, 'model.safetensors')).tensors;
  const moments = decodeSafetensors(bytes['optimizer.safetensors'], join(dir, 'optimizer.safetensors')).tensors;
  const part = (prefix: string) => new Map([...moments].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  return { dir, state, params, moments: { m: part('exp_avg.'), v: part('exp_avg_sq.') } };
}

/** The newest checkpoint that loads; corrupt ones are reported through `warn` and skipped. */
export function latestGoodCheckpoint(checkpointsDir: string, warn: (message: string) => void): Checkpoint | undefined {
  for (const { dir } of stepDirs(checkpointsDir)) {
    try {
      return loadCheckpoint(dir);
    } catch (e) {
      if (!(e instanceof CheckpointError || e instanceof SafetensorsError)) throw e;
      warn(`${e.message}; falling back to the previous checkpoint`);
    }
  }
  return undefined;
}

export function toTensors(arrays: Map<string, NamedArray>): Params {
  return Object.fromEntries([...arrays].map(([k, { shape, data }]) => [k, tf.tensor(data, shape)]));
}
