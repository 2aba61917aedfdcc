// Builds the torch backend's addon (native/) against the libtorch it finds.
// Run by `npm install` / `npm ci` (package.json "install"), again by hand with
// `npm run install`. It never fails the install: without a libtorch it prints
// one line and normlab runs on wasm.
//
// Where a libtorch is looked for, in order:
//   NORMLAB_LIBTORCH=<dir>   an unpacked libtorch (include/, lib/); `none` skips the build
//   python3's torch          a pip-installed PyTorch, via torch.utils.cmake_prefix_path
//   the system               Debian/Ubuntu's libtorch-dev (/usr/include/ATen, /usr/lib/<triplet>)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface Libtorch {
  /** Where it was found, for the log. */
  source: string;
  include: string;
  lib: string;
  cxx11Abi: boolean;
  cuda: boolean;
}

/** The c10d process groups the addon can build with (data parallel), and the header folders they need. */
export interface C10d {
  gloo: boolean;
  nccl: boolean;
  includeDirs: string[];
}

const NATIVE_DIR = resolve(import.meta.dirname, '..', 'native');
const SKIP = ['none', 'off', '0'];

function libtorchAt(root: string, include: string, lib: string, source: string): Libtorch | undefined {
  const c10 = join(lib, 'libc10.so');
  if (!existsSync(join(include, 'ATen', 'ATen.h')) || !existsSync(join(lib, 'libtorch_cpu.so')) || !existsSync(c10)) return undefined;
  return {
    source: `${source} (${root})`,
    include,
    lib,
    // Old pip wheels use the pre-C++11 std::string ABI; the addon must match the library.
    cxx11Abi: readFileSync(c10).includes('__cxx11'),
    cuda: existsSync(join(lib, 'libtorch_cuda.so')),
  };
}

function fromPython(): Libtorch | undefined {
  const r = spawnSync('python3', ['-c', 'import torch.utils; print(torch.utils.cmake_prefix_path)'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const root = resolve(r.stdout.trim(), '..', '..');
  return libtorchAt(root, join(root, 'include'), join(root, 'lib'), 'python3 torch');
}

function fromSystem(): Libtorch | undefined {
  const triplet = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch as string];
  const libs = [triplet && `/usr/lib/${triplet}`, '/usr/lib', '/usr/local/lib'].filter((d): d is string => Boolean(d));
  for (const lib of libs) {
    const found = libtorchAt('/usr', '/usr/include', lib, 'system');
    if (found) return found;
  }
  return undefined;
}

/** The libtorch to build against; null when NORMLAB_LIBTORCH says not to, undefined when there is none. */
export function findLibtorch(env = process.env): Libtorch | null | undefined {
  const dir = env.NORMLAB_LIBTORCH;
  if (dir && SKIP.includes(dir.toLowerCase())) return null;
  if (dir) return libtorchAt(dir, join(dir, 'include'), join(dir, 'lib'), 'NORMLAB_LIBTORCH');
  return fromPython() ?? fromSystem();
}

const C10D_HEADERS = 'torch/csrc/distributed/c10d';

/** The first folder of `dirs` that holds `file`. */
function folderWith(dirs: string[], file: string): string | undefined {
  return dirs.find((d) => existsSync(join(d, file)));
}

/** Header folders of python3's pip CUDA packages (nvidia/nccl/include, nvidia/cuda_runtime/include, …). */
function pythonNvidiaIncludes(): string[] {
  const r = spawnSync('python3', ['-c', 'import nvidia, os; [print(os.path.join(p, d, "include")) for p in nvidia.__path__ for d in sorted(os.listdir(p))]'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').filter((d) => d && existsSync(d)) : [];
}

/**
 * Gloo needs its own headers (Debian: libgloo-dev; some libtorch bundles ship them);
 * NCCL a CUDA libtorch plus nccl.h and the CUDA runtime's headers (a CUDA toolkit or pip's nvidia-* packages).
 * Without them the addon builds, and data parallel says what is missing when asked for.
 */
export function findC10d(torch: Libtorch, env = process.env): C10d {
  const includeDirs: string[] = [];
  const hasHeader = (name: string) => existsSync(join(torch.include, C10D_HEADERS, name));
  const add = (dir: string | undefined) => {
    if (dir && dir !== '/usr/include' && dir !== torch.include && !includeDirs.includes(dir)) includeDirs.push(dir);
    return dir !== undefined;
  };
  const gloo = hasHeader('ProcessGroupGloo.hpp') && add(folderWith([torch.include, '/usr/include', '/usr/local/include'], 'gloo/algorithm.h'));
  let nccl = false;
  if (torch.cuda && hasHeader('ProcessGroupNCCL.hpp')) {
    const cudaHome = env.CUDA_HOME ?? env.CUDA_PATH ?? '/usr/local/cuda';
    const candidates = [torch.include, join(cudaHome, 'include'), ...pythonNvidiaIncludes(), '/usr/include'];
    const ncclDir = folderWith(candidates, 'nccl.h');
    const runtimeDir = folderWith(candidates, 'cuda_runtime_api.h');
    if (ncclDir && runtimeDir) {
      // ATen's CUDA headers include cuBLAS, cuSPARSE and cuSOLVER's: every candidate folder that exists.
      candidates.filter((d) => existsSync(d)).forEach(add);
      nccl = true;
    }
  }
  return { gloo, nccl, includeDirs };
}

/** npm's bundled node-gyp: npm names it to lifecycle scripts; by hand, next to this node. */
function nodeGyp(): string | undefined {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c): c is string => Boolean(c) && existsSync(c!));
}

/** This node's own headers, so node-gyp needs no download. */
function nodeDirArgs(): string[] {
  const dir = resolve(dirname(process.execPath), '..');
  return existsSync(join(dir, 'include', 'node', 'common.gypi')) ? [`--nodedir=${dir}`] : [];
}

function build(torch: Libtorch, c10d: C10d, gyp: string): boolean {
  const nodeGypRun = (args: string[]) =>
    spawnSync(process.execPath, [gyp, '--loglevel=warn', ...args], { cwd: NATIVE_DIR, stdio: ['ignore', 'inherit', 'inherit'] }).status === 0;
  const variables = [
    `-Dtorch_include=${torch.include}`, `-Dtorch_lib=${torch.lib}`,
    `-Dtorch_cxx11_abi=${torch.cxx11Abi ? 1 : 0}`, `-Dtorch_cuda=${torch.cuda ? 1 : 0}`,
    `-Dc10d_gloo=${c10d.gloo ? 1 : 0}`, `-Dc10d_nccl=${c10d.nccl ? 1 : 0}`, `-Dc10d_include_dirs=${c10d.includeDirs.join(' ')}`,
  ];
  // configure, then build: make rebuilds only what changed, so a reinstall costs seconds.
  return nodeGypRun(['configure', ...nodeDirArgs(), '--', ...variables]) &&
    nodeGypRun(['build', ...nodeDirArgs(), '-j', String(cpus().length)]);
}

function main(): void {
  const torch = findLibtorch();
  if (torch === null) return console.log('normlab: NORMLAB_LIBTORCH is none: the torch backend is not built');
  if (!torch) {
    return console.log('normlab: no libtorch found, so the torch backend is not built (normlab runs on wasm); ' +
      'to build it install libtorch-dev (Debian) or PyTorch (pip), or set NORMLAB_LIBTORCH, then run: npm run install');
  }
  const gyp = nodeGyp();
  if (!gyp) return console.log('normlab: node-gyp not found (it comes with npm), so the torch backend is not built');
  const c10d = findC10d(torch);
  const groups = [c10d.gloo && 'Gloo', c10d.nccl && 'NCCL'].filter(Boolean).join(' and ');
  console.log(`normlab: building the torch backend against libtorch from ${torch.source}${torch.cuda ? ' with CUDA' : ''}; ` +
    (groups ? `data parallel over c10d ${groups}` : 'no c10d process group (data parallel needs Gloo\'s headers: apt-get install libgloo-dev)'));
  if (!build(torch, c10d, gyp)) {
    console.log('normlab: the torch backend did not build (errors above); normlab runs on wasm until it does: npm run install');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
