// The c10d process group of this process (native/src/distributed.cc): rendezvous
// through a TCPStore at the master's address, Gloo on the CPU, NCCL on CUDA.
// Collectives are tfjs kernels of the torch backend, so tensors never leave it.
import * as tf from '@tensorflow/tfjs';
import { AddonUnavailable, loadAddon } from '../backend/torch/addon.ts';
import { runFused } from '../model/fused.ts';
import type { RankEnv } from './launch-env.ts';

/** A collective failed: a rank died, or none answered within the timeout. The run stops; it resumes from its last checkpoint. */
export class DistributedError extends Error {
  /** A failure, said in one paragraph (no stack): exit 1. */
  readonly exitCode = 1;
}

/** Data parallel cannot start here (backend, build): exit 2, saying what to do. */
export class DataParallelUnavailable extends Error {
  readonly exitCode = 2;
}

/** Seconds a rank waits for the others (rendezvous and each collective): NORMLAB_DIST_TIMEOUT, else 600. */
export function collectiveTimeoutSeconds(env: Record<string, string | undefined> = process.env): number {
  const text = env.NORMLAB_DIST_TIMEOUT;
  if (text === undefined) return 600;
  const s = Number(text);
  if (!(s > 0) || !Number.isFinite(s)) throw new DataParallelUnavailable(`NORMLAB_DIST_TIMEOUT=${text}: expected seconds > 0`);
  return s;
}

export interface ProcessGroup {
  rank: number;
  worldSize: number;
  /** Each tensor summed over every rank, as one flat all-reduce; new tensors. */
  allReduceSum(tensors: tf.Tensor[]): tf.Tensor[];
  /** Rank `root`'s tensors on every rank; new tensors. */
  broadcast(tensors: tf.Tensor[], root: number): tf.Tensor[];
  barrier(): void;
  destroy(): void;
}

/**
 * The c10d process group this process would use: Gloo on the CPU, NCCL on CUDA.
 * Throws, saying what to do, when the backend or the addon's build cannot, or
 * `localRanks` ranks would not each have a GPU of their own.
 */
export function dataParallelBackend(localRanks = 1): 'gloo' | 'nccl' {
  if (tf.getBackend() !== 'torch') {
    throw new DataParallelUnavailable(`data parallel runs over PyTorch's c10d, on the torch backend; this process computes on ${tf.getBackend()}: use --backend torch (or auto with the torch addon built)`);
  }
  let info;
  try {
    info = loadAddon();
  } catch (e) {
    throw new DataParallelUnavailable((e as AddonUnavailable).message);
  }
  if (typeof info.c10dBackends !== 'function') {
    throw new DataParallelUnavailable('this torch addon was built before normlab had data parallel: rebuild it with npm run install');
  }
  const { device, cudaDevices } = info.info();
  const backend = device.startsWith('cuda') ? 'nccl' : 'gloo';
  if (!info.c10dBackends().includes(backend)) {
    throw new DataParallelUnavailable(backend === 'gloo'
      ? 'data parallel on the CPU needs c10d\'s Gloo process group, which this torch addon was built without (Gloo\'s headers were missing): apt-get install libgloo-dev, then npm run install; one process trains without it'
      : 'data parallel on CUDA needs c10d\'s NCCL process group, which this torch addon was built without (it needs a CUDA libtorch and nccl.h at build time, e.g. a pip PyTorch with CUDA): then npm run install');
  }
  if (backend === 'nccl' && localRanks > cudaDevices) {
    throw new DataParallelUnavailable(`${localRanks} ranks on this machine need a GPU each, and ${cudaDevices} are visible: use --nproc-per-node ${cudaDevices} or --device cpu`);
  }
  return backend;
}

/**
 * Joins the process group of `env` (blocks until every rank has joined, or the
 * timeout). Needs the torch backend active, on this rank's device.
 */
export function initProcessGroup(env: RankEnv, timeoutSeconds: number): ProcessGroup {
  const backend = dataParallelBackend();
  const addon = loadAddon();
  const where = `rank ${env.rank} of ${env.worldSize}`;
  const fail = (what: string, e: unknown) => new DistributedError(
    `${where} (${backend}): ${what} failed: another rank stopped or did not answer within ${timeoutSeconds} s (NORMLAB_DIST_TIMEOUT); ` +
    `the run stops and resumes from its last checkpoint when started again (${(e as Error).message.split('\n')[0]})`);
  try {
    addon.c10dInit({
      backend, rank: env.rank, worldSize: env.worldSize, masterAddr: env.masterAddr, masterPort: env.masterPort,
      timeoutMs: Math.round(timeoutSeconds * 1000),
    });
  } catch (e) {
    throw fail(`joining the process group at ${env.masterAddr}:${env.masterPort}`, e);
  }
  const collective = <T>(what: string, body: () => T): T => {
    try {
      return body();
    } catch (e) {
      throw fail(what, e);
    }
  };
  return {
    rank: env.rank,
    worldSize: env.worldSize,
    allReduceSum: (tensors) => collective('all-reduce', () => runFused<tf.Tensor[]>('NormlabAllReduceSum', tensors)),
    broadcast: (tensors, root) => collective('broadcast', () => runFused<tf.Tensor[]>('NormlabBroadcast', tensors, { root })),
    barrier: () => collective('barrier', () => addon.c10dBarrier()),
    destroy: () => addon.c10dDestroy(),
  };
}
