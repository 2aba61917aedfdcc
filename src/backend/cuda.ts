// Finds the CUDA libraries tfjs-node-gpu's TensorFlow loads, where dlopen would,
// and whether an NVIDIA GPU is visible: tfjs-node-gpu itself says nothing when
// they are missing, it computes on the CPU.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * What TensorFlow 2.9.1 (the libtensorflow of tfjs-node-gpu 4.22, built for
 * CUDA 11.2 and cuDNN 8.1) dlopens before it registers a GPU; if one is
 * missing it registers none (its dlopen_checker.cc). Each with its pip package.
 */
export const CUDA_LIBRARIES: Record<string, string> = {
  'libcuda.so.1': 'the NVIDIA driver',
  'libcudart.so.11.0': 'nvidia-cuda-runtime-cu11',
  'libcublas.so.11': 'nvidia-cublas-cu11',
  'libcublasLt.so.11': 'nvidia-cublas-cu11',
  'libcufft.so.10': 'nvidia-cufft-cu11',
  'libcurand.so.10': 'nvidia-curand-cu11',
  'libcusolver.so.11': 'nvidia-cusolver-cu11',
  'libcusparse.so.11': 'nvidia-cusparse-cu11',
  'libcudnn.so.8': 'nvidia-cudnn-cu11',
};

export interface CudaLibrary {
  name: string;
  /** Where dlopen finds it; absent when it does not. */
  path?: string;
  /** A copy in a CUDA install folder the loader does not search (add it to LD_LIBRARY_PATH). */
  offPath?: string;
  /** Paths of other versions the loader knows, e.g. …/libcudart.so.13: another CUDA than 11. */
  otherVersions: string[];
}

/** Parses `ldconfig -p`: "\tlibcudart.so.11.0 (libc6,x86-64) => /usr/lib/libcudart.so.11.0". */
function ldconfigEntries(ldconfigOutput: string): [name: string, path: string][] {
  return [...ldconfigOutput.matchAll(/^\s*(\S+) \([^)]*\) => (.+)$/gm)].map((m) => [m[1]!, m[2]!.trim()]);
}

/**
 * Where each library in `names` is found: the first of `searchDirs` that holds
 * it, else the loader cache (`ldconfig -p` output), else undefined.
 */
export function findCudaLibraries(searchDirs: string[], ldconfigOutput: string, names = Object.keys(CUDA_LIBRARIES)): Record<string, string | undefined> {
  const cached = new Map<string, string>();
  for (const [name, path] of ldconfigEntries(ldconfigOutput)) if (!cached.has(name)) cached.set(name, path);
  return Object.fromEntries(names.map((name) => {
    const inDir = searchDirs.map((dir) => join(dir, name)).find((path) => existsSync(path));
    const inCache = cached.get(name);
    return [name, inDir ?? (inCache && existsSync(inCache) ? inCache : undefined)];
  }));
}

/** What dlopen searches besides its cache: LD_LIBRARY_PATH, then the system folders. */
export function loaderDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const triplet = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch as string];
  const system = ['/lib', '/usr/lib', '/lib64', '/usr/lib64', ...(triplet ? [`/lib/${triplet}`, `/usr/lib/${triplet}`] : [])];
  return [...(env.LD_LIBRARY_PATH ?? '').split(delimiter).filter(Boolean), ...system];
}

/** Where CUDA is usually installed and dlopen does not look unless told: /usr/local/cuda*, a conda env. */
function installDirs(env: NodeJS.ProcessEnv): string[] {
  let local: string[] = [];
  try {
    local = readdirSync('/usr/local').filter((d) => d.startsWith('cuda')).map((d) => `/usr/local/${d}`);
  } catch {
    // No /usr/local: nothing installed there.
  }
  const roots = [...local, ...(env.CONDA_PREFIX ? [env.CONDA_PREFIX] : [])];
  return roots.flatMap((root) => [join(root, 'lib64'), join(root, 'lib'), join(root, 'targets', `${process.arch === 'arm64' ? 'sbsa' : 'x86_64'}-linux`, 'lib')]);
}

/** `ldconfig -p`, or '' where there is no ldconfig (it lives in /sbin, often off a user's PATH). */
export function ldconfigOutput(): string {
  for (const ldconfig of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    try {
      return execFileSync(ldconfig, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    } catch {
      // Not there; try the next place.
    }
  }
  return '';
}

/** Every library TensorFlow needs, found or not, with what helps when not. */
export function cudaLibraries(env: NodeJS.ProcessEnv = process.env): CudaLibrary[] {
  const cache = ldconfigOutput();
  const found = findCudaLibraries(loaderDirs(env), cache);
  const elsewhere = findCudaLibraries(installDirs(env), '');
  const known = ldconfigEntries(cache);
  return Object.keys(CUDA_LIBRARIES).map((name) => {
    const stem = name.slice(0, name.indexOf('.so') + '.so.'.length);
    const otherVersions = [...new Set(known.filter(([n]) => n.startsWith(stem) && n !== name).map(([, p]) => p))];
    return { name, path: found[name], offPath: found[name] ? undefined : elsewhere[name], otherVersions };
  });
}

/** How to get the missing libraries, one sentence. */
export function cudaAdvice(missing: CudaLibrary[]): string {
  const toolkit = missing.filter((l) => l.name !== 'libcuda.so.1');
  const pipPackages = [...new Set(toolkit.map((l) => CUDA_LIBRARIES[l.name]))];
  const offPath = [...new Set(missing.flatMap((l) => (l.offPath ? [l.offPath.slice(0, l.offPath.lastIndexOf('/'))] : [])))];
  return [
    toolkit.length > 0 && 'install CUDA 11.2 and cuDNN 8.1 from NVIDIA (developer.nvidia.com/cuda-toolkit-archive, developer.nvidia.com/cudnn), ' +
      `or \`conda install -c conda-forge cudatoolkit=11.2 cudnn=8.1.0\`, or \`pip install ${pipPackages.join(' ')}\`, ` +
      'and put the folders holding them on LD_LIBRARY_PATH',
    offPath.length > 0 && `${offPath.join(' and ')} hold${offPath.length === 1 ? 's' : ''} some of them: export LD_LIBRARY_PATH=${offPath.join(':')}:$LD_LIBRARY_PATH`,
    missing.some((l) => l.name === 'libcuda.so.1') && 'libcuda.so.1 comes with the NVIDIA driver (nvidia-smi shows whether one is installed)',
  ].filter(Boolean).join('; ');
}

export interface GpuPresence {
  /** nvidia-smi's path, when it is on PATH. */
  nvidiaSmi?: string;
  /** "name, driver version" per GPU nvidia-smi lists. */
  gpus: string[];
  /** /dev/nvidia0: the driver has a device node for a GPU. */
  deviceNode: boolean;
}

export function gpuPresence(env: NodeJS.ProcessEnv = process.env): GpuPresence {
  const nvidiaSmi = (env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'nvidia-smi')).find((path) => existsSync(path));
  let gpus: string[] = [];
  if (nvidiaSmi) {
    try {
      const out = execFileSync(nvidiaSmi, ['--query-gpu=name,driver_version', '--format=csv,noheader'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
      gpus = out.split('\n').map((l) => l.trim()).filter(Boolean);
    } catch {
      // nvidia-smi without a working driver fails; no GPU to list.
    }
  }
  return { nvidiaSmi, gpus, deviceNode: existsSync('/dev/nvidia0') };
}
