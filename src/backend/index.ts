// Chooses the tfjs backend a run computes on. tfjs-node(-gpu) are optional:
// they are imported only at run time, so a checkout without them still works.

import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { version_wasm } from '@tensorflow/tfjs-backend-wasm';
import { cudaAdvice, cudaLibraries } from './cuda.ts';
import { AddonUnavailable, type TorchDevice, useTorch } from './torch/index.ts';
import type { BackendName } from './names.ts';
import { registerWasmKernels } from './wasm-kernels.ts';

export { BACKEND_NAMES, type BackendName } from './names.ts';

/** The backend that was asked for cannot be used; the message says what to install. */
export class BackendError extends Error {
  readonly exitCode = 2;
}

export interface ActiveBackend {
  name: string;
  version: string;
}

export const NATIVE_PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;
type NativeName = keyof typeof NATIVE_PACKAGES;

/** Whether a package resolves from here, without loading it. */
export function packageInstalled(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/**
 * Activates `name` and returns what is running; `auto` prefers torch (when its
 * addon is built), then tfjs-node-gpu (when it computes on a GPU), then
 * tfjs-node, then wasm. `device`
 * is torch's: a device other than `auto` asks for torch.
 */
export async function useBackend(name: BackendName, device: TorchDevice = 'auto', cudaIndex = 0): Promise<ActiveBackend> {
  switch (name) {
    case 'auto': return device === 'auto' ? useFirstAvailable(cudaIndex) : useTorchBackend(device, cudaIndex);
    case 'torch': return useTorchBackend(device, cudaIndex);
    case 'wasm': return useWasm();
    case 'cpu': return useCpu();
    default: return useNative(name);
  }
}

async function useFirstAvailable(cudaIndex: number): Promise<ActiveBackend> {
  for (const use of [() => useTorchBackend('auto', cudaIndex), () => useNative('tensorflow-gpu'), () => useNative('tensorflow')]) {
    try {
      return await use();
    } catch (e) {
      if (!(e instanceof BackendError)) throw e;
    }
  }
  return useWasm();
}

async function useTorchBackend(device: TorchDevice, cudaIndex = 0): Promise<ActiveBackend> {
  try {
    const torch = await useTorch(device, cudaIndex);
    return { name: 'torch', version: versions(['libtorch', torch.description]) };
  } catch (e) {
    if (e instanceof AddonUnavailable) throw new BackendError(`backend 'torch': ${e.message}`);
    throw e;
  }
}

async function useNative(name: NativeName): Promise<ActiveBackend> {
  const pkg = NATIVE_PACKAGES[name];
  if (name === 'tensorflow-gpu') {
    // TensorFlow otherwise reserves nearly all GPU memory when it starts; read then.
    process.env.TF_FORCE_GPU_ALLOW_GROWTH ??= 'true';
    refuseWithoutCuda(pkg);
  }
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
  if (name === 'tensorflow-gpu') checkUsingGpu(tf.backend());
  return { name, version: versions([pkg.slice('@tensorflow/'.length), mod.version?.['tfjs-node'] ?? 'unknown']) };
}

/**
 * tfjs-node-gpu loads without the CUDA libraries and computes on the CPU;
 * refuse before loading it when it is absent or TensorFlow would find no GPU.
 */
function refuseWithoutCuda(pkg: string): void {
  const installed = packageInstalled(pkg);
  const missing = cudaLibraries().filter((l) => !l.path);
  if (installed && missing.length === 0) return;
  const problems = [
    !installed && `${pkg} is not installed (npm install ${pkg}@${tf.version.tfjs}; its installer downloads libtensorflow 2.9.1 from storage.googleapis.com)`,
    missing.length > 0 && `TensorFlow 2.9 would find no GPU, since the loader cannot find ${missing.map((l) => l.name).join(', ')} (CUDA 11.2, cuDNN 8.1)`,
  ].filter(Boolean);
  const advice = missing.length > 0 ? `; to get them: ${cudaAdvice(missing)}` : '';
  throw new BackendError(`backend 'tensorflow-gpu' cannot compute on a GPU here: ${problems.join('; ')}${advice}. ` +
    "`normlab doctor` lists what each backend needs; --backend torch --device cuda is the other GPU backend.");
}

/**
 * The proof that tfjs-node-gpu computes on a GPU: its backend's
 * isUsingGpuDevice (tfjs-node 4.22), true when TensorFlow registered a GPU device.
 */
export function checkUsingGpu(backend: object): void {
  if ((backend as { isUsingGpuDevice?: unknown }).isUsingGpuDevice === true) return;
  throw new BackendError("backend 'tensorflow-gpu': TensorFlow loaded its CUDA libraries but registered no GPU, so it would compute on the CPU; " +
    'its log above says why: no GPU the driver sees (check nvidia-smi), a driver too old for CUDA 11.2, or a cuDNN older than 8.1');
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
