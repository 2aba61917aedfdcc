// Pieces every command shares: the backend and device flags and user-facing errors.
import { Option } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { type ActiveBackend, BACKEND_NAMES, type BackendName, useBackend } from '../backend/index.ts';
import { TORCH_DEVICES, type TorchDevice } from '../backend/torch/index.ts';

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

let device: TorchDevice = 'auto';

/** main.ts hands the parsed --device over before each command runs. */
export function selectDevice(name: string): void {
  device = name as TorchDevice;
}

/** The backend `name`; `cudaIndex` picks the GPU (a data-parallel rank's local rank). */
export async function startBackend(name: string, cudaIndex = 0): Promise<ActiveBackend> {
  const backend = await useBackend(name as BackendName, device, cudaIndex);
  tf.enableProdMode();
  return backend;
}
