// What produced a run, recorded with it (runs.versions_json) so a report can
// tell when the runs it compares came from different code or machines.
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { VERSION } from '../cli/version.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The versions a run records at its start: normlab, its git commit, Node, tfjs, the backend, and the host. */
export function runVersions(backend: { name: string; version: string }, device?: string): Record<string, string> {
  return {
    normlab: VERSION, git: gitCommit(), node: process.version, tfjs: tf.version.tfjs,
    backend: `${backend.name} ${backend.version}`, host: hostDescription(device),
  };
}

/**
 * The checkout's commit (12 hex digits), `-dirty` when tracked files differ
 * from it (untracked files, e.g. a user's own configs, do not count); the GPU
 * kit, which has no checkout, carries the commit it was built from.
 */
export function gitCommit(): string {
  const git = (...args: string[]) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' });
  const head = git('rev-parse', 'HEAD');
  if (head.status !== 0) return process.env.NORMLAB_KIT_COMMIT ?? 'unknown';
  const dirty = git('status', '--porcelain', '--untracked-files=no').stdout.trim() !== '';
  return `${head.stdout.trim().slice(0, 12)}${dirty ? '-dirty' : ''}`;
}

/** e.g. "Intel(R) Xeon(R) Platinum 8481C × 2; NVIDIA H100 80GB HBM3" (the GPU only when the run computes on one). */
export function hostDescription(device?: string): string {
  const cores = cpus();
  const cpu = `${cores[0]?.model.trim() ?? 'unknown CPU'} × ${cores.length}`;
  return `${cpu}; ${device?.startsWith('cuda') ? gpuName(device) : 'no GPU used'}`;
}

function gpuName(device: string): string {
  const index = device.split(':')[1] ?? '0';
  const smi = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader', '-i', index], { encoding: 'utf8' });
  return smi.status === 0 && smi.stdout.trim() ? smi.stdout.trim() : `GPU ${device} (nvidia-smi unavailable)`;
}
