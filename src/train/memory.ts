// How much memory a training step needs (`normlab plan`), and the check that
// refuses, on every backend, a config that cannot fit the device before
// anything is allocated or written: the wasm heap, RAM on a CPU, GPU memory
// on CUDA. The fix it names is train.micro_batch_size.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { RunConfig } from '../config/schema.ts';
import { parameterCount } from '../model/model.ts';
import { torchDevice } from '../backend/torch/index.ts';

/**
 * Bytes per parameter the tfjs backends keep beyond weights, moments and
 * gradients: their Cast and Identity kernels copy inputs in the backward
 * pass. With the rest, 28 per parameter, measured on wasm with the 130M
 * preset at batch 1 (3.64 GiB of live tensors when it aborted). The torch
 * backend's kernels copy nothing: its native peak less the activations is 16
 * per parameter (bench/small, batches 8 and 16).
 */
const workspacePerParameter = (backend: string) => (backend === 'torch' ? 0 : 12);

/**
 * Activation floats kept for the backward pass, per token of a micro-batch:
 * per block d-wide states, F-wide SwiGLU states and H·T attention
 * probabilities, plus the logits and their gradient. An upper bound: the
 * torch backend's native peak grows by 0.94 of it per token on bench/small.
 */
function activationFloatsPerToken(cfg: RunConfig): number {
  const { d_model: d, ffn_dim: F, n_heads: H, n_layers: L, vocab_size: V } = cfg.model;
  return L * (24 * d + 6 * F + 4 * H * cfg.train.seq_len) + 3 * V;
}

export interface MemoryPlan {
  parameters: number;
  /** Rows per forward/backward pass, and passes per step on each rank. */
  microBatch: number;
  microBatches: number;
  ranks: number;
  tokensPerStep: number;
  bytes: {
    weights: number;
    /** AdamW's two moments. */
    optimizer: number;
    /** The gradient; with accumulation, the running sum and one micro-batch's. */
    gradients: number;
    workspace: number;
    /** Kept for the backward pass of one micro-batch. */
    activations: number;
    total: number;
  };
}

/** Rows per pass: micro_batch_size, else each rank's share of the batch. */
export function defaultMicroBatch(cfg: RunConfig, ranks = 1): number {
  return Math.min(cfg.train.micro_batch_size ?? Infinity, cfg.train.batch_size / ranks);
}

/**
 * Memory one device of `backend` needs for a training step of `cfg` at
 * `microBatch` rows per pass (default: the config's, on one of `ranks` data-parallel ranks).
 */
export function planMemory(cfg: RunConfig, backend: string, microBatch?: number, ranks = 1): MemoryPlan {
  const P = parameterCount(cfg.model);
  microBatch ??= defaultMicroBatch(cfg, ranks);
  const microBatches = cfg.train.batch_size / ranks / microBatch;
  const weights = 4 * P, optimizer = 8 * P, gradients = 4 * P * (microBatches > 1 ? 2 : 1);
  const workspace = workspacePerParameter(backend) * P;
  const activations = 4 * activationFloatsPerToken(cfg) * microBatch * cfg.train.seq_len;
  return {
    parameters: P, microBatch, microBatches, ranks, tokensPerStep: cfg.train.batch_size * cfg.train.seq_len,
    bytes: { weights, optimizer, gradients, workspace, activations, total: weights + optimizer + gradients + workspace + activations },
  };
}

export function estimateTrainingBytes(cfg: RunConfig, backend: string): number {
  return planMemory(cfg, backend).bytes.total;
}

/** What the wasm heap can hold for tensors (4 GiB address space, less the runtime's own use). */
export const WASM_TENSOR_LIMIT = 3.5 * 2 ** 30;

/** Where a step's tensors live, and how many bytes of it a run may use. */
export interface DeviceMemory {
  what: string;
  bytes: number;
}

/** The first CUDA device's memory (nvidia-smi, in MiB), or undefined where it cannot be read. */
function gpuMemory(): number | undefined {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=memory.total', '--format=csv,noheader,nounits', '-i', '0'], { encoding: 'utf8', timeout: 10_000 });
    const mib = Number(out.trim().split('\n')[0]);
    return mib > 0 ? mib * 2 ** 20 : undefined;
  } catch {
    return undefined;
  }
}

/** RAM: the machine's, or the cgroup's limit where a container sets a lower one. */
function ramBytes(): number {
  try {
    const limit = Number(readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim());
    if (limit > 0) return Math.min(limit, totalmem());
  } catch {
    // no cgroup v2 limit
  }
  return totalmem();
}

/**
 * The memory a step of `backend` (on torch's `device`) may take: the wasm
 * heap, GPU memory on CUDA, else 90 % of RAM (the runtime and the OS keep
 * the rest). Undefined when unknown (a GPU nvidia-smi does not describe).
 */
export function deviceMemory(backend: string, device?: string): DeviceMemory | undefined {
  if (backend === 'wasm') return { what: "the wasm backend's 4 GiB address space", bytes: WASM_TENSOR_LIMIT };
  if (backend === 'tensorflow-gpu' || device?.startsWith('cuda')) {
    const bytes = gpuMemory();
    return bytes === undefined ? undefined : { what: 'GPU memory', bytes };
  }
  return { what: 'RAM', bytes: 0.9 * ramBytes() };
}

export class MemoryLimitError extends Error {
  readonly exitCode = 2;
}

/** The largest micro-batch (a divisor of batch_size) whose step fits `limit`, or undefined when even one row does not. */
export function fittingMicroBatch(cfg: RunConfig, backend: string, limit: number, ranks = 1): number | undefined {
  const rows = cfg.train.batch_size / ranks;
  for (let m = rows; m >= 1; m--) {
    if (rows % m === 0 && planMemory(cfg, backend, m, ranks).bytes.total <= limit) return m;
  }
  return undefined;
}

const gib = (b: number) => (b / 2 ** 30).toFixed(1);

/** Data parallel: `ranks` in all, `localRanks` of them sharing this machine's RAM. */
export interface RankLayout {
  ranks?: number;
  localRanks?: number;
  device?: string;
}

/** Refuses (MemoryLimitError, exit 2) a config whose training step cannot fit the device's memory. */
export function checkFitsBackend(cfg: RunConfig, backend: string, { ranks = 1, localRanks = 1, device = torchDevice() }: RankLayout = {}): void {
  const memory = deviceMemory(backend, device);
  // Ranks on one machine share its RAM; each GPU is its own.
  const limit = memory?.what === 'RAM' ? { ...memory, bytes: memory.bytes / localRanks } : memory;
  const plan = planMemory(cfg, backend, undefined, ranks);
  if (!limit || plan.bytes.total <= limit.bytes) return;
  const fits = fittingMicroBatch(cfg, backend, limit.bytes, ranks);
  const size = `${(plan.parameters / 1e6).toFixed(0)}M parameters, micro-batch ${plan.microBatch} × ${cfg.train.seq_len}`;
  const fix = fits
    ? `Set train.micro_batch_size: ${fits} (the step then accumulates ${plan.microBatches * plan.microBatch / fits} micro-batches of ${fits} rows${ranks > 1 ? ' on each rank' : ''}, same batch; about ${gib(planMemory(cfg, backend, fits, ranks).bytes.total)} GiB)`
    : 'Even a micro-batch of one row does not fit: lower train.seq_len or use a smaller model';
  const alternative = backend === 'wasm'
    ? '; or use a native backend: --backend torch (libtorch; see README) or --backend tensorflow (@tensorflow/tfjs-node)'
    : '';
  const share = localRanks > 1 && limit.what === 'RAM' ? ` shared by ${localRanks} ranks` : '';
  throw new MemoryLimitError(
    `a training step of this model (${size}) needs about ${gib(plan.bytes.total)} GiB ` +
    `(activations ${gib(plan.bytes.activations)} GiB), more than ${limit.what}${share} allows (${gib(limit.bytes)} GiB). ` +
    `${fix}${alternative}. \`normlab plan <config>\` shows the estimate.`);
}
