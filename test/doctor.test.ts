// Issue 6: `normlab doctor` says which backends run here and why a GPU one
// does not; tensorflow-gpu refuses instead of silently computing on the CPU.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BackendError, checkUsingGpu, NATIVE_PACKAGES, packageInstalled } from '../src/backend/index.ts';
import { CUDA_LIBRARIES, cudaAdvice, cudaLibraries, findCudaLibraries, gpuPresence, loaderDirs } from '../src/backend/cuda.ts';
import { runCli, tempDir, writeConfig } from './helpers/cli.ts';

const BACKENDS = ['torch', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
const KEY_LIBRARIES = ['libcudart.so.11.0', 'libcublas.so.11', 'libcudnn.so.8'];
const gpuTensorflowMissing = !packageInstalled(NATIVE_PACKAGES['tensorflow-gpu']) || cudaLibraries().some((l) => !l.path);

function touch(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), '');
  return join(dir, name);
}

test('findCudaLibraries finds a library in the first folder holding it, else in the loader cache, and only that exact version', () => {
  const root = tempDir('normlab-cuda-');
  const cudart = touch(join(root, 'a'), 'libcudart.so.11.0');
  touch(join(root, 'a'), 'libcublas.so.12'); // the wrong major version is not libcublas.so.11
  const cublas = touch(join(root, 'b'), 'libcublas.so.11');
  touch(join(root, 'b'), 'libcudart.so.11.0'); // shadowed by a/
  const cudnn = touch(join(root, 'c'), 'libcudnn.so.8');
  const ldconfig = [
    '3 libs found in cache `/etc/ld.so.cache\'',
    `\tlibcudnn.so.8 (libc6,x86-64) => ${cudnn}`,
    `\tlibcudart.so.11.0 (libc6,x86-64) => ${cudnn}`, // a directory hit wins over the cache
    `\tlibcufft.so.10 (libc6,x86-64) => ${join(root, 'gone', 'libcufft.so.10')}`, // a stale entry: no file
  ].join('\n');
  const found = findCudaLibraries([join(root, 'a'), join(root, 'b'), join(root, 'missing')], ldconfig);
  assert.deepEqual(Object.keys(found), Object.keys(CUDA_LIBRARIES));
  assert.equal(found['libcudart.so.11.0'], cudart);
  assert.equal(found['libcublas.so.11'], cublas);
  assert.equal(found['libcudnn.so.8'], cudnn);
  assert.equal(found['libcufft.so.10'], undefined);
  assert.equal(found['libcuda.so.1'], undefined);
});

test('the loader is searched where dlopen searches: LD_LIBRARY_PATH first', () => {
  const dirs = loaderDirs({ LD_LIBRARY_PATH: '/opt/x:/opt/y' });
  assert.deepEqual(dirs.slice(0, 2), ['/opt/x', '/opt/y']);
  assert.ok(dirs.includes('/usr/lib'));
});

test('cudaLibraries finds libraries on LD_LIBRARY_PATH and names a conda copy the loader cannot see', () => {
  const root = tempDir('normlab-cuda-');
  for (const name of KEY_LIBRARIES) touch(join(root, 'cuda'), name);
  const conda = touch(join(root, 'conda', 'lib'), 'libcusparse.so.11');
  const libs = new Map(cudaLibraries({ LD_LIBRARY_PATH: join(root, 'cuda'), CONDA_PREFIX: join(root, 'conda') }).map((l) => [l.name, l]));
  for (const name of KEY_LIBRARIES) assert.equal(libs.get(name)!.path, join(root, 'cuda', name));
  const cusparse = libs.get('libcusparse.so.11')!;
  // Where the system itself has a libcusparse.so.11, that is what dlopen takes.
  if (!cusparse.path) assert.equal(cusparse.offPath, conda);
});

test('the advice names the pip packages of the missing libraries only, the driver, and a folder to add to LD_LIBRARY_PATH', () => {
  const advice = cudaAdvice([
    { name: 'libcudnn.so.8', otherVersions: [], offPath: '/opt/conda/lib/libcudnn.so.8' },
    { name: 'libcuda.so.1', otherVersions: [] },
  ]);
  assert.match(advice, /CUDA 11\.2 and cuDNN 8\.1/);
  assert.match(advice, /pip install nvidia-cudnn-cu11`/);
  assert.doesNotMatch(advice, /nvidia-cublas-cu11/);
  assert.match(advice, /export LD_LIBRARY_PATH=\/opt\/conda\/lib/);
  assert.match(advice, /libcuda\.so\.1 comes with the NVIDIA driver/);
});

test('a GPU is what nvidia-smi on PATH lists; without nvidia-smi there is none', () => {
  const bin = tempDir('normlab-smi-');
  const smi = touch(bin, 'nvidia-smi');
  writeFileSync(smi, '#!/bin/sh\necho "NVIDIA H200, 550.54.15"\n');
  chmodSync(smi, 0o755);
  const present = gpuPresence({ PATH: bin });
  assert.equal(present.nvidiaSmi, smi);
  assert.deepEqual(present.gpus, ['NVIDIA H200, 550.54.15']);
  const none = gpuPresence({ PATH: tempDir('normlab-empty-') });
  assert.equal(none.nvidiaSmi, undefined);
  assert.deepEqual(none.gpus, []);
});

test('a tfjs-node-gpu backend that fell back to the CPU is refused with exit code 2', () => {
  for (const cpuOnly of [{ isUsingGpuDevice: false }, {}]) {
    assert.throws(() => checkUsingGpu(cpuOnly), (e: Error) =>
      e instanceof BackendError && e.exitCode === 2 && /registered no GPU, so it would compute on the CPU/.test(e.message));
  }
  assert.doesNotThrow(() => checkUsingGpu({ isUsingGpuDevice: true }));
});

test('train --backend tensorflow-gpu without the package or the CUDA libraries exits 2, names what is missing, writes nothing', { skip: !gpuTensorflowMissing && 'tfjs-node-gpu and CUDA 11 are installed' }, () => {
  const dir = tempDir('normlab-gpu-');
  const config = writeConfig(dir);
  const before = readdirSync(dir);
  const r = runCli(['train', config, '--backend', 'tensorflow-gpu'], dir);
  assert.equal(r.code, 2, r.stderr);
  const message = r.stderr.trim();
  assert.match(message, /^normlab: backend 'tensorflow-gpu' cannot compute on a GPU here/);
  const missing = cudaLibraries().filter((l) => !l.path).map((l) => l.name);
  for (const name of missing) assert.ok(message.includes(name), `names ${name}`);
  if (missing.length > 0) assert.match(message, /CUDA 11\.2 and cuDNN 8\.1.*LD_LIBRARY_PATH/);
  assert.doesNotMatch(message, /\n\s*\n|\n\s+at /, 'one paragraph, no stack');
  assert.deepEqual(readdirSync(dir), before, 'no run folder or database');
});

test('normlab doctor names every backend, measures those that load, and says why the GPU backends do not run', () => {
  const r = runCli(['doctor']);
  assert.equal(r.code, 0, r.stderr);
  for (const name of BACKENDS) assert.match(r.stdout, new RegExp(`^  ${name} +(yes|no) `, 'm'), `a line for ${name}`);
  assert.match(r.stdout, /^  wasm +yes .*matMul 1024²: \d+\.\d GFLOP\/s$/m);
  assert.match(r.stdout, /^  cpu +yes .*matMul 512²: \d+\.\d GFLOP\/s$/m);
  for (const name of KEY_LIBRARIES) assert.match(r.stdout, new RegExp(`^    ${name.replace(/\./g, '\\.')} +(/|missing)`, 'm'));
  assert.match(r.stdout, /^  nvidia-smi +/m);
  assert.match(r.stdout.trim().split('\n').at(-1)!, /^(No GPU backend works here: tensorflow-gpu because .*; torch .*\.|GPU backends that work here: .*\.)$/);
  if (gpuTensorflowMissing) assert.match(r.stdout, /^  tensorflow-gpu +no +backend 'tensorflow-gpu' cannot compute on a GPU here/m);
});

test('normlab doctor --json is one object with every backend, the CUDA libraries and the GPU summary', () => {
  const r = runCli(['doctor', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  assert.deepEqual(d.backends.map((b: { name: string }) => b.name), BACKENDS);
  const wasm = d.backends.find((b: { name: string }) => b.name === 'wasm');
  assert.equal(wasm.loads, true);
  assert.equal(wasm.matMul.size, 1024);
  assert.ok(wasm.matMul.gflops > 0);
  for (const b of d.backends) assert.ok(b.loads ? b.version && b.matMul.gflops > 0 : b.reason, `${b.name}: a version and rate, or a reason`);
  assert.deepEqual(d.cudaLibraries.map((l: { name: string }) => l.name), Object.keys(CUDA_LIBRARIES));
  assert.equal(typeof d.gpu.deviceNode, 'boolean');
  assert.match(d.gpuSummary, /GPU backend/);
  const tfGpu = d.backends.find((b: { name: string }) => b.name === 'tensorflow-gpu');
  if (gpuTensorflowMissing) {
    assert.equal(tfGpu.loads, false);
    for (const l of d.cudaLibraries.filter((l: { path?: string }) => !l.path)) assert.ok(tfGpu.reason.includes(l.name));
  }
});
