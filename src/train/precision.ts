// train.precision: what the products of a run compute in. The backend owns
// the arithmetic (STYLE.md): the torch backend does fp32, tf32 and bf16 mixed
// precision inside its kernels; the tfjs backends compute in float32 only.
import type { Precision, RunConfig } from '../config/schema.ts';
import { setTorchPrecision, torchDevice } from '../backend/torch/index.ts';

export class PrecisionError extends Error {
  readonly exitCode = 2;
}

/** The config's precision, or the default: bf16 on CUDA, fp32 on CPUs and the tfjs backends. */
export function resolvePrecision(config: RunConfig, backend: string, device = torchDevice()): Precision {
  const asked = config.train.precision;
  const onCuda = backend === 'torch' && device?.startsWith('cuda') === true;
  if (!asked) return onCuda ? 'bf16' : 'fp32';
  if (asked !== 'fp32' && backend !== 'torch') {
    throw new PrecisionError(
      `train.precision: ${asked} needs the torch backend (--backend torch), which computes products in bfloat16 or TF32; ` +
      `backend '${backend}' computes in float32 only: set train.precision to fp32 or leave it out`);
  }
  return asked;
}

/** Resolves the run's precision and sets it on the active backend; returns it, to be recorded with the run. */
export function applyPrecision(config: RunConfig, backend: string): Precision {
  const precision = resolvePrecision(config, backend);
  if (backend === 'torch') setTorchPrecision(precision);
  return precision;
}
