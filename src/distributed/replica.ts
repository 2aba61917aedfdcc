// One rank of a data-parallel run as the rest of normlab sees it: the gradient
// reduction the train loop calls, its slice of every global batch, and "only
// rank 0 writes" (the store, the log, run files and checkpoints) in one place.
import * as tf from '@tensorflow/tfjs';
import pino, { type Logger } from 'pino';
import type { RankEnv } from './launch-env.ts';
import { collectiveTimeoutSeconds, DataParallelUnavailable, initProcessGroup, type ProcessGroup } from './process-group.ts';

/** The trainer's view of data parallel (src/train/trainer.ts: TrainContext.replica). */
export interface Replica {
  rank: number;
  worldSize: number;
  /** Whether this rank writes the run's store, log and checkpoints: rank 0 alone. */
  writes: boolean;
  /** Each tensor summed over every rank: the step's [gradients…, loss sum, token count] as one flat all-reduce. */
  allReduce(tensors: tf.Tensor[]): tf.Tensor[];
  /** True on every rank when any rank asks to stop, so all of them checkpoint after the same step. */
  anyRank(local: boolean): boolean;
  /** Throws unless every rank starts from rank 0's step and parameters (all resumed the same checkpoint). */
  checkSameStart(step: number, params: Record<string, tf.Tensor>): void;
  /** Runs `body` on rank 0, then on the others (e.g. preparing data into a cache they share). */
  firstOnRankZero<T>(body: () => Promise<T>): Promise<T>;
  /** Leaves the process group. */
  destroy(): void;
}

/**
 * This process as one rank of a data-parallel run with global batches of
 * `batchSize` rows: joins the others (blocks until all have, or the timeout).
 */
export function joinDataParallel(launch: RankEnv, batchSize: number): Replica {
  if (batchSize % launch.worldSize !== 0) {
    throw new DataParallelUnavailable(`train.batch_size ${batchSize} does not divide among ${launch.worldSize} ranks: each rank takes an equal share of every batch; use a multiple of ${launch.worldSize}`);
  }
  return replicaOf(initProcessGroup(launch, collectiveTimeoutSeconds()));
}

export function replicaOf(group: ProcessGroup): Replica {
  return {
    rank: group.rank,
    worldSize: group.worldSize,
    writes: group.rank === 0,
    allReduce: (tensors) => group.allReduceSum(tensors),
    anyRank: (local) => {
      const [flag] = group.allReduceSum([tf.scalar(local ? 1 : 0)]);
      try {
        return flag!.dataSync()[0]! > 0;
      } finally {
        flag!.dispose();
      }
    },
    checkSameStart: (step, params) => {
      // Step and the sum of every parameter, as rank 0 has them, against this rank's.
      const mine = tf.tidy(() => tf.stack([tf.scalar(step), tf.addN(Object.values(params).map((p) => p.sum()))]));
      const [root] = group.broadcast([mine], 0);
      const [s, sum] = Array.from(root!.dataSync()), [ms, msum] = Array.from(mine.dataSync());
      tf.dispose([mine, root!]);
      if (s !== ms || sum !== msum) {
        throw new Error(`rank ${group.rank} starts from step ${ms} but rank 0 from step ${s}${s === ms ? ' with other parameters' : ''}: ` +
          'every rank must read the same checkpoint folder (a file system that all of them share)');
      }
    },
    firstOnRankZero: async (body) => {
      if (group.rank !== 0) group.barrier();
      const result = await body();
      if (group.rank === 0) group.barrier();
      return result;
    },
    destroy: () => group.destroy(),
  };
}

/** Rows [rank·B/W, (rank+1)·B/W) of a global batch of B rows: each rank's share, so together they see the single-process batch. */
export function rankRows<T extends Int32Array | Float32Array>(batch: T, replica: Replica, rows: number): T {
  const width = batch.length / rows, share = rows / replica.worldSize;
  return batch.subarray(replica.rank * share * width, (replica.rank + 1) * share * width) as T;
}

/** The real thing on the writing rank (or in one process), `sink` on every other. */
export function onlyRankZero<T>(replica: Replica | undefined, open: () => T, sink: () => T): T {
  return !replica || replica.writes ? open() : sink();
}

/** A logger that writes nothing, for the ranks that do not write. */
export function silentLog(): Logger {
  return pino({ enabled: false });
}

/** An object whose every method does nothing: the store of a rank that does not write. */
export function sink<T extends object>(): T {
  return new Proxy({}, { get: () => () => undefined }) as T;
}
