// One rank of a data-parallel run as the rest of normlab sees it: the gradient
// reduction the train loop calls, its slice of every global batch, and "only
// rank 0 writes" (the store, the log, run files and checkpoints) in one place.
import * as tf from '@tensorflow/tfjs';
import pino, { type Logger } from 'pino';
import type { ProcessGroup } from './process-group.ts';

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
  };
}

/**
 * The global mean loss and gradients of a step from this rank's mean `loss`
 * over its `tokens` real targets: all-reduce SUM of [n·g…, n·loss, n], then
 * divided by the global count (TEAM.md's shared design: G / N, S / N).
 * Takes ownership of `loss` and `grads`.
 */
export function globalMean(
  replica: Replica, loss: tf.Scalar, grads: Record<string, tf.Tensor>, tokens: tf.Scalar,
): { loss: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const keys = Object.keys(grads);
  const local = tf.tidy(() => [...keys.map((k) => grads[k]!.mul(tokens)), loss.mul(tokens), tokens.clone()]);
  tf.dispose([loss, tokens, ...Object.values(grads)]);
  const summed = replica.allReduce(local);
  tf.dispose(local);
  const total = summed[summed.length - 1]!;
  const out = tf.tidy(() => ({
    loss: summed[keys.length]!.div(total) as tf.Scalar,
    grads: Object.fromEntries(keys.map((k, i) => [k, summed[i]!.div(total)])),
  }));
  tf.dispose(summed);
  return out;
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
