// How much memory a training step needs, so a model that cannot fit the wasm
// backend's 4 GiB address space is refused up front with the alternative,
// instead of aborting deep inside a kernel.
import type { RunConfig } from '../config/schema.ts';
import { parameterCount } from '../model/model.ts';

/**
 * Bytes per parameter during a step: weights, two AdamW moments and the
 * gradient (16), plus the copies tfjs's backward pass keeps alive (its Cast
 * and Identity kernels copy inputs) — about 28 in all, measured on the
 * 130M preset at batch 1 (3.64 GiB of live tensors when wasm aborted).
 */
const BYTES_PER_PARAMETER = 28;

/** Activation bytes kept for the backward pass, per token: a rough upper bound per block plus the logits. */
function activationBytes(cfg: RunConfig): number {
  const { d_model: d, ffn_dim: F, n_heads: H, n_layers: L, vocab_size: V } = cfg.model;
  const T = cfg.train.seq_len;
  const perToken = L * (24 * d + 6 * F + 4 * H * T) + 6 * V;
  return 4 * perToken * cfg.train.batch_size * T;
}

export function estimateTrainingBytes(cfg: RunConfig): number {
  return BYTES_PER_PARAMETER * parameterCount(cfg.model) + activationBytes(cfg);
}

/** What the wasm heap can hold for tensors (4 GiB address space, less the runtime's own use). */
export const WASM_TENSOR_LIMIT = 3.5 * 2 ** 30;

export class MemoryLimitError extends Error {
  readonly exitCode = 2;
}

export function checkFitsBackend(cfg: RunConfig, backend: string): void {
  const need = estimateTrainingBytes(cfg);
  if (backend !== 'wasm' || need <= WASM_TENSOR_LIMIT) return;
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  throw new MemoryLimitError(
    `a training step of this model (${(parameterCount(cfg.model) / 1e6).toFixed(0)}M parameters, batch ${cfg.train.batch_size} × ${cfg.train.seq_len}) ` +
    `needs about ${gib(need)} GiB, more than the wasm backend's 4 GiB address space allows (${gib(WASM_TENSOR_LIMIT)} GiB for tensors). ` +
    'Use a native backend: --backend torch (libtorch; see README) or --backend tensorflow (@tensorflow/tfjs-node), ' +
    'or lower train.batch_size / train.seq_len.');
}
