// Loads the native addon (native/, built by scripts/build-torch.ts at install
// time) and describes what it exports.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

export const ADDON_PATH = fileURLToPath(new URL('../../../native/build/Release/normlab_torch.node', import.meta.url));

export type AttrValue = number | boolean | string | number[] | null;

export interface TorchAddon {
  /** Where run() writes its results: count, then per output handle, dtype code, rank, dims. */
  outputs: Int32Array;
  /** The id run() takes for a tfjs kernel name, or -1 when the addon lacks that kernel. */
  kernelId(name: string): number;
  kernelNames(): string[];
  /** Runs a kernel on tensor handles (-1 for an absent optional input); returns the output count. */
  run(kernel: number, inputs: number[], attrs: AttrValue[]): number;
  upload(values: Float32Array | Int32Array | Uint8Array, shape: number[], dtype: string): number;
  download(handle: number): Float32Array | Int32Array | Uint8Array;
  release(handle: number): void;
  memory(): NativeMemory;
  emptyCache(): void;
  setThreads(intraOp: number, blas: number): void;
  setDevice(device: 'cpu' | 'cuda', index?: number): void;
  /** The arithmetic of matrix products: fp32, tf32 (CUDA's TF32), bf16 (mixed precision, float32 outside the products). */
  setPrecision(precision: 'fp32' | 'tf32' | 'bf16'): void;
  /** c10d (native/src/distributed.cc): joins the process group; collectives are the NormlabAllReduceSum / NormlabBroadcast kernels. */
  c10dInit(options: { backend: 'gloo' | 'nccl'; rank: number; worldSize: number; masterAddr: string; masterPort: number; timeoutMs: number }): void;
  c10dBarrier(): void;
  c10dDestroy(): void;
  /** The process groups this build has: 'gloo', 'nccl'. */
  c10dBackends(): string[];
  info(): { torch: string; threads: number; blas: string; cudaDevices: number; device: string };
}

export interface NativeMemory {
  /** Live native tensors (one per tfjs data id held by this backend). */
  tensors: number;
  /** Bytes of the distinct storages those tensors use. */
  tensorBytes: number;
  /** Bytes the addon's allocator has handed out and not had back. */
  allocatedBytes: number;
  /** Freed large blocks kept for reuse. */
  cachedBytes: number;
  peakAllocatedBytes: number;
}

/** Why the addon cannot be used here; the message says what to do. */
export class AddonUnavailable extends Error {}

let loaded: TorchAddon | undefined;

export function loadAddon(): TorchAddon {
  if (loaded) return loaded;
  pickOpenblasKernels();
  // OpenMP's threads spin between parallel regions by default; where other
  // processes share the cores, a spinning or descheduled thread stalls every
  // barrier (the 2-core tiny bench step: 90 ms becomes 600 ms). Read at load.
  process.env.OMP_WAIT_POLICY ??= 'passive';
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as TorchAddon;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'MODULE_NOT_FOUND'
      ? 'the torch addon is not built'
      : `the torch addon does not load (${err.message.split('\n')[0]})`;
    throw new AddonUnavailable(`${why}; install libtorch (Debian: apt-get install libtorch-dev) and run: npm run install`);
  }
  const threads = Number(process.env.NORMLAB_TORCH_THREADS) || availableParallelism();
  loaded.setThreads(threads, 1);
  return loaded;
}

/**
 * OpenBLAS picks its kernels by CPU model when it loads; 0.3.21 (Debian 12)
 * does not know CPUs newer than itself and falls back to its slowest
 * (Prescott) kernels, 3-4x slower GEMMs. Name the kernels from the CPU's
 * features unless the user did.
 */
function pickOpenblasKernels(): void {
  if (process.platform !== 'linux' || process.env.OPENBLAS_CORETYPE) return;
  let flags: Set<string>;
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    flags = new Set(line?.split(':')[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return;
  }
  const has = (...names: string[]) => names.every((n) => flags.has(n));
  if (has('avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512cd')) process.env.OPENBLAS_CORETYPE = 'SkylakeX';
  else if (has('avx2', 'fma')) process.env.OPENBLAS_CORETYPE = 'Haswell';
}
