// Chooses the tfjs backend a run computes on. tfjs-node(-gpu) are optional:
// they are imported only at run time, so a checkout without them still works.

import * as tf from '@tensorflow/tfjs';
import { version_wasm } from '@tensorflow/tfjs-backend-wasm';
import { AddonUnavailable, type TorchDevice, useTorch } from './torch/index.ts';
import { registerWasmKernels } from './wasm-kernels.ts';

export const BACKEND_NAMES = ['auto', 'torch', 'wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** The backend that was asked for cannot be used; the message says what to install. */
export class BackendError extends Error {
  readonly exitCode = 2;
}

export interface ActiveBackend {
  name: string;
  version: string;
}

const NATIVE_PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;
type NativeName = keyof typeof NATIVE_PACKAGES;

/**
 * Activates `name` and returns what is running; `auto` prefers torch (when its
 * addon is built), then tfjs-node-gpu, then tfjs-node, then wasm. `device`
 * is torch's: a device other than `auto` asks for torch.
 */
export async function useBackend(name: BackendName, device: TorchDevice = 'auto'): Promise<ActiveBackend> {
  switch (name) {
    case 'auto': return device === 'auto' ? useFirstAvailable() : useTorchBackend(device);
    case 'torch': return useTorchBackend(device);
    case 'wasm': return useWasm();
    case 'cpu': return useCpu();
    default: return useNative(name);
  }
}

async function useFirstAvailable(): Promise<ActiveBackend> {
  for (const use of [() => useTorchBackend('auto'), () => useNative('tensorflow-gpu'), () => useNative('tensorflow')]) {
    try {
      return await use();
    } catch (e) {
      if (!(e instanceof BackendError)) throw e;
    }
  }
  return useWasm();
}

async function useTorchBackend(device: TorchDevice): Promise<ActiveBackend> {
  try {
    const torch = await useTorch(device);
    return { name: 'torch', version: versions(['libtorch', torch.description]) };
  } catch (e) {
    if (e instanceof AddonUnavailable) throw new BackendError(`backend 'torch': ${e.message}`);
    throw e;
  }
}

async function useNative(name: NativeName): Promise<ActiveBackend> {
  const pkg = NATIVE_PACKAGES[name];
  let mod: { version?: Record<string, string> };
  try {
    // A variable specifier keeps TypeScript from requiring the optional package.
    const specifier: string = pkg;
    mod = await import(specifier);
  } catch (e) {
    throw new BackendError(
      `backend '${name}' needs ${pkg}, which could not be loaded (${(e as Error).message.split('\n')[0]}); ` +
      `install it with: npm install ${pkg}@${tf.version.tfjs}`);
  }
  // Both packages register their backend under the one name 'tensorflow'.
  await activate('tensorflow', `reinstall ${pkg}@${tf.version.tfjs}`);
  return { name, version: versions([pkg.slice('@tensorflow/'.length), mod.version?.['tfjs-node'] ?? 'unknown']) };
}

async function useWasm(): Promise<ActiveBackend> {
  registerWasmKernels();
  // No setWasmPaths: under Node the backend loads its .wasm files from its own
  // dist folder (__dirname), whatever the working directory.
  await activate('wasm', 'check that node_modules/@tensorflow/tfjs-backend-wasm/dist holds its .wasm files');
  return { name: 'wasm', version: versions(['tfjs-backend-wasm', version_wasm]) };
}

async function useCpu(): Promise<ActiveBackend> {
  await activate('cpu', 'reinstall @tensorflow/tfjs');
  // The cpu backend prints an "install tfjs-node" banner on its first tensor;
  // `auto` already takes tfjs-node when it can, so here the banner is noise.
  // `firstUse` is a private field that only gates that banner.
  Object.assign(tf.backend(), { firstUse: false });
  return { name: 'cpu', version: versions() };
}

async function activate(backend: string, remedy: string): Promise<void> {
  if (!(await tf.setBackend(backend))) {
    throw new BackendError(`tfjs backend '${backend}' failed to initialize; ${remedy}`);
  }
  await tf.ready();
}

function versions(...extra: [string, string][]): string {
  return [['tfjs', tf.version.tfjs], ...extra].map(([pkg, v]) => `${pkg} ${v}`).join(', ');
}
