// Starting N worker processes on this machine, one GPU each where there are GPUs.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * The GPUs workers may use: CUDA_VISIBLE_DEVICES when it is set (a scheduler's
 * choice wins), else the indices nvidia-smi lists, else none.
 */
export function detectGpus(env: NodeJS.ProcessEnv = process.env): string[] {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) return visible.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== '-1');
  const r = spawnSync('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0 || !r.stdout) return [];
  return r.stdout.split('\n').map((s) => s.trim()).filter((s) => /^\d+$/.test(s));
}

/**
 * Worker k of `count`: its own GPU (round robin when workers outnumber GPUs);
 * without GPUs, an equal share of the cores for the torch backend's threads,
 * since each worker would otherwise start one per core (a NORMLAB_TORCH_THREADS
 * the user set wins).
 */
export function workerEnv(k: number, count: number, gpus: string[], env: NodeJS.ProcessEnv = process.env, cores = availableParallelism()): NodeJS.ProcessEnv {
  if (gpus.length > 0) return { ...env, CUDA_VISIBLE_DEVICES: gpus[k % gpus.length] };
  return { ...env, NORMLAB_TORCH_THREADS: env.NORMLAB_TORCH_THREADS ?? String(Math.max(1, Math.floor(cores / count))) };
}

export interface LaunchedWorkers {
  children: ChildProcess[];
  /** Exit code per worker (null: killed by a signal). */
  done: Promise<(number | null)[]>;
}

/** Spawns `count` workers running `node <bin> <args(k)>`; their output goes straight to ours. */
export function launchWorkers(count: number, bin: string, args: (k: number) => string[], env: (k: number) => NodeJS.ProcessEnv): LaunchedWorkers {
  const children = Array.from({ length: count }, (_, k) =>
    spawn(process.execPath, [bin, ...args(k)], { stdio: 'inherit', env: env(k) }));
  const done = Promise.all(children.map((c) => new Promise<number | null>((resolve) => {
    c.on('exit', (code) => resolve(code));
    c.on('error', () => resolve(1));
  })));
  return { children, done };
}
