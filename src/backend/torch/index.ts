// The `torch` tfjs backend: tensors live in native memory as ATen tensors
// (libtorch), on the CPU or a CUDA device, and every kernel is an ATen call.
import * as tf from '@tensorflow/tfjs';
import type { TorchDevice } from '../names.ts';
import { ConfigError } from '../../config/errors.ts';
import { AddonUnavailable, loadAddon } from './addon.ts';
import { TorchBackend } from './backend.ts';
import { registerTorchGradients } from './gradients.ts';
import { registerTorchKernels, setTorchKernel } from './kernels.ts';

export { AddonUnavailable } from './addon.ts';
export type { NativeMemory } from './addon.ts';

export { TORCH_DEVICES, type TorchDevice } from '../names.ts';

/**
 * How the torch backend computes attention: `sdpa`, one kernel over ATen's
 * scaled_dot_product_attention (native/src/attention.cc: flash or
 * memory-efficient attention on CUDA with PyTorch >= 2), or `composed`, the
 * tfjs composition of src/model/layers.ts (products and the fused masked
 * softmax). sdpa unless the NORMLAB_TORCH_ATTENTION environment variable
 * says otherwise.
 */
export const TORCH_ATTENTION = ['sdpa', 'composed'] as const;
export type TorchAttention = (typeof TORCH_ATTENTION)[number];

export interface TorchInfo {
  /** 'cpu' or 'cuda:0'. */
  device: string;
  /** e.g. "1.13.0 on cpu, 2 threads, OpenBLAS 0.3.21 (SkylakeX kernels)". */
  description: string;
}

/**
 * Registers the backend (once) and makes it tfjs's current one on `device`
 * ('auto': CUDA when libtorch has it and a GPU is visible; `cudaIndex`: which
 * GPU, a data-parallel rank's local rank). Throws
 * AddonUnavailable when the addon is not built or cannot run there.
 */
export async function useTorch(device: TorchDevice, cudaIndex = 0): Promise<TorchInfo> {
  const addon = loadAddon();
  if (!tf.findBackendFactory('torch')) {
    registerTorchKernels('torch', addon);
    registerTorchGradients();
    tf.registerBackend('torch', () => new TorchBackend(addon));
  }
  const target = device === 'auto' ? (addon.info().cudaDevices > 0 ? 'cuda' : 'cpu') : device;
  try {
    // A scheduler that shows each rank only its own GPU (CUDA_VISIBLE_DEVICES) makes it device 0.
    addon.setDevice(target, cudaIndex % Math.max(1, addon.info().cudaDevices));
  } catch (e) {
    throw new AddonUnavailable(`--device ${target}: ${(e as Error).message}`);
  }
  if (!(await tf.setBackend('torch'))) throw new AddonUnavailable('the torch backend failed to initialize');
  const info = addon.info();
  const attention = attentionOf();
  setTorchAttention(attention);
  const threads = info.device === 'cpu' ? `, ${info.threads} thread${info.threads === 1 ? '' : 's'}, ${info.blas}` : '';
  return { device: info.device, description: `${info.torch} on ${info.device}${threads}, ${attention} attention` };
}

/**
 * NORMLAB_TORCH_ATTENTION, else sdpa: on CUDA it is flash attention; on the
 * CPU (libtorch 1.13) it measured as fast on bench/tiny and 1.4-1.6x on
 * bench/small, with less memory (docs/performance.md).
 */
function attentionOf(): TorchAttention {
  const chosen = process.env.NORMLAB_TORCH_ATTENTION;
  if (chosen === undefined || chosen === '') return 'sdpa';
  if (!(TORCH_ATTENTION as readonly string[]).includes(chosen)) {
    throw new ConfigError('NORMLAB_TORCH_ATTENTION', [{ key: null, detail: `'${chosen}': expected one of ${TORCH_ATTENTION.join(', ')}` }]);
  }
  return chosen as TorchAttention;
}

/** Switches the torch backend's attention (see TORCH_ATTENTION); useTorch sets the default. */
export function setTorchAttention(attention: TorchAttention): void {
  setTorchKernel('NormlabAttention', attention === 'sdpa');
}

/** The native memory of the torch backend, or undefined when another backend is active. */
export function torchMemory(): ReturnType<TorchBackend['memory']> | undefined {
  return tf.getBackend() === 'torch' ? (tf.backend() as TorchBackend).memory() : undefined;
}

/** Sets the torch backend's product precision (native/src/addon.cc setPrecision); it must be the active backend. */
export function setTorchPrecision(precision: 'fp32' | 'tf32' | 'bf16'): void {
  loadAddon().setPrecision(precision);
}

/** The torch backend's device ('cpu', 'cuda:0'), or undefined when another backend is active. */
export function torchDevice(): string | undefined {
  return tf.getBackend() === 'torch' ? loadAddon().info().device : undefined;
}
