// Pieces every command shares: the backend flag and user-facing errors.
import { Option } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { type ActiveBackend, BACKEND_NAMES, type BackendName, useBackend } from '../backend/index.ts';

/** An error the user can act on: printed as one paragraph, no stack, exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

export function backendOption(): Option {
  return new Option('--backend <name>', 'compute backend').choices(BACKEND_NAMES).default('auto');
}

export async function startBackend(name: string): Promise<ActiveBackend> {
  const backend = await useBackend(name as BackendName);
  tf.enableProdMode();
  return backend;
}
