// `normlab doctor`: which backends run here, how fast, and why a GPU backend
// does not: the facts a user needs before choosing --backend.
import { type CudaLibrary, cudaLibraries, type GpuPresence, gpuPresence } from './cuda.ts';
import { type BackendName, NATIVE_PACKAGES, packageInstalled, useBackend } from './index.ts';

export type ProbedBackend = Exclude<BackendName, 'auto'>;

export interface BackendReport {
  name: ProbedBackend;
  loads: boolean;
  /** What runs, e.g. "tfjs 4.22.0, tfjs-backend-wasm 4.22.0". */
  version?: string;
  /** Why it does not load: the error a --backend of this name gives. */
  reason?: string;
  /** float32 matMul of two size² matrices, best of three. */
  matMul?: { size: number; gflops: number };
  /** torch only: whether it computes on CUDA here, and if not why. */
  cuda?: { available: boolean; detail: string };
}

export interface Diagnosis {
  backends: BackendReport[];
  gpu: GpuPresence;
  cudaLibraries: CudaLibrary[];
  /** One sentence on the GPU backends: which run, or why none does. */
  gpuSummary: string;
}

/** Measures the active backend's matMul rate in GFLOP/s (bench's matMulRate). */
export type MatMulRate = (size: number) => number;

// Every backend, in `auto`'s order of preference. The cpu backend is plain
// JavaScript, about 1 GFLOP/s: a smaller product keeps doctor to seconds.
const MATMUL_SIZE: Record<ProbedBackend, number> = { torch: 1024, 'tensorflow-gpu': 1024, tensorflow: 1024, wasm: 1024, cpu: 512 };
const PROBED = Object.keys(MATMUL_SIZE) as ProbedBackend[];

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;

/** torch on CUDA, or the addon's reason it cannot be (a CPU-only libtorch, no device). */
async function torchCuda(): Promise<BackendReport['cuda']> {
  try {
    const { version } = await useBackend('torch', 'cuda');
    return { available: true, detail: version };
  } catch (e) {
    return { available: false, detail: firstLine(e) };
  }
}

async function probe(name: ProbedBackend, matMulRate: MatMulRate): Promise<BackendReport> {
  // Asked first: a failed --device cuda leaves torch as it was.
  const cuda = name === 'torch' ? await torchCuda() : undefined;
  try {
    const { version } = await useBackend(name);
    const size = MATMUL_SIZE[name];
    return { name, loads: true, version, matMul: { size, gflops: matMulRate(size) }, ...(cuda && { cuda }) };
  } catch (e) {
    // Any failure, not only a BackendError: reporting it is what doctor is for.
    return { name, loads: false, reason: firstLine(e) };
  }
}

function gpuSummary(backends: BackendReport[], libraries: CudaLibrary[], gpu: GpuPresence): string {
  const torch = backends.find((b) => b.name === 'torch')!;
  const tfGpu = backends.find((b) => b.name === 'tensorflow-gpu')!;
  const working = [
    torch.cuda?.available && 'torch (--device cuda)',
    tfGpu.loads && 'tensorflow-gpu',
  ].filter(Boolean);
  if (working.length > 0) return `GPU backends that work here: ${working.join(', ')}.`;
  const missing = libraries.filter((l) => !l.path).map((l) => l.name);
  const tfWhy = [
    !packageInstalled(NATIVE_PACKAGES['tensorflow-gpu']) &&
      `${NATIVE_PACKAGES['tensorflow-gpu']} is not installed (its installer downloads libtensorflow 2.9.1 from storage.googleapis.com, so it installs only where that host is reachable)`,
    missing.length > 0 && `the CUDA 11.2 / cuDNN 8.1 libraries its TensorFlow loads are missing (${missing.join(', ')})`,
  ].filter(Boolean);
  const torchWhy = torch.loads ? `torch loads but not on CUDA (${torch.cuda?.detail})` : `torch does not load (${torch.reason})`;
  const seen = gpu.gpus.length > 0
    ? `nvidia-smi sees ${gpu.gpus.join('; ')}`
    : `no NVIDIA GPU is visible (${gpu.nvidiaSmi ? 'nvidia-smi lists none' : 'no nvidia-smi'}, ${gpu.deviceNode ? 'though /dev/nvidia0 exists' : 'no /dev/nvidia0'})`;
  return `No GPU backend works here: tensorflow-gpu because ${tfWhy.join(' and ') || tfGpu.reason}; ${torchWhy}; and ${seen}.`;
}

/** Tries every backend in turn (the last tried stays active), measuring those that load. */
export async function diagnose(matMulRate: MatMulRate): Promise<Diagnosis> {
  const backends: BackendReport[] = [];
  for (const name of PROBED) backends.push(await probe(name, matMulRate));
  const libraries = cudaLibraries();
  const gpu = gpuPresence();
  return { backends, gpu, cudaLibraries: libraries, gpuSummary: gpuSummary(backends, libraries, gpu) };
}
