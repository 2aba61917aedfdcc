// Pieces every command shares: the backend and device flags and user-facing errors.
// Only light modules here: every command's declaration imports this file at start-up,
// so TensorFlow.js and the backends load when a command starts one (startBackend).
import { Option } from 'commander';
import type { ActiveBackend } from '../backend/index.ts';
import { BACKEND_NAMES, type BackendName, TORCH_DEVICES, type TorchDevice } from '../backend/names.ts';

/** An error the user can act on: printed as one paragraph, no stack, exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

export function backendOption(): Option {
  return new Option('--backend <name>', 'compute backend').choices(BACKEND_NAMES).default('auto');
}

/** A program-wide flag (main.ts), given before or after the command. */
export function deviceOption(): Option {
  return new Option('--device <device>', 'where the torch backend computes (auto: CUDA when libtorch has it and a GPU is visible)')
    .choices(TORCH_DEVICES).default('auto');
}

/** For repeatable options: each value appended to the previous ones. */
export const collect = (value: string, previous: string[]) => [...previous, value];

let device: TorchDevice = 'auto';

/** main.ts hands the parsed --device over before each command runs. */
export function selectDevice(name: string): void {
  device = name as TorchDevice;
}

/** The backend `name`; `cudaIndex` picks the GPU (a data-parallel rank's local rank). */
export async function startBackend(name: string, cudaIndex = 0): Promise<ActiveBackend> {
  const [tf, { useBackend }] = await Promise.all([import('@tensorflow/tfjs'), import('../backend/index.ts')]);
  const backend = await useBackend(name as BackendName, device, cudaIndex);
  tf.enableProdMode();
  return backend;
}
