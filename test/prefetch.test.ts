import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrefetchedData } from '../src/train/prefetch.ts';
import type { TrainingData } from '../src/train/trainer.ts';

/** Batch i is [i]; its weight [i / 4]; the position is the next i. */
function counter(): TrainingData {
  let next = 0, last = -1;
  return {
    nextBatch: () => Int32Array.of((last = next++)),
    lastBatchWeights: () => Float32Array.of(last / 4),
    position: () => ({ next }),
    seek: (p) => { next = (p as { next: number }).next; },
    validation: [],
  };
}

test('a prefetched batch is the next one returned, and positions stay those of the batches consumed', () => {
  const data = new PrefetchedData(counter());
  assert.deepEqual([...data.nextBatch()], [0]);
  data.prefetch();
  data.prefetch(); // once per batch
  assert.deepEqual(data.position(), { next: 1 }, 'a checkpoint now resumes at the held batch');
  assert.deepEqual([...data.nextBatch(), ...data.lastBatchWeights!()], [1, 0.25]);
  assert.deepEqual(data.position(), { next: 2 });
  data.prefetch();
  data.seek({ next: 7 });
  assert.deepEqual([...data.nextBatch()], [7], 'seeking drops the held batch');
});
