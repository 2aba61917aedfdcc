// Data loading overlapped with compute: the trainer reads the next step's
// batch after queueing this step's kernels and before it waits for their
// results (on CUDA the device computes meanwhile). The position a checkpoint
// saves stays that of the batches consumed, so resuming reads the held batch again.
import type { TrainingData } from './trainer.ts';

interface Held {
  tokens: Int32Array;
  weights?: Float32Array;
  /** The position before this batch was read. */
  position: unknown;
}

export class PrefetchedData implements TrainingData {
  private held?: Held;
  private weights?: Float32Array;
  readonly validation: Int32Array[];
  readonly validationWeights?: Float32Array[];

  /** Present when the inner data has loss weights (truncate batching). */
  readonly lastBatchWeights?: () => Float32Array;

  constructor(private readonly inner: TrainingData) {
    this.validation = inner.validation;
    this.validationWeights = inner.validationWeights;
    if (inner.lastBatchWeights) this.lastBatchWeights = () => this.weights!;
  }

  /** Reads the next batch now (once), to be returned by the next nextBatch(). */
  prefetch(): void {
    this.held ??= this.read();
  }

  nextBatch(): Int32Array {
    const batch = this.held ?? this.read();
    this.held = undefined;
    this.weights = batch.weights;
    return batch.tokens;
  }

  position(): unknown {
    return this.held ? this.held.position : this.inner.position();
  }

  seek(position: unknown): void {
    this.held = undefined;
    this.inner.seek(position);
  }

  private read(): Held {
    const position = this.inner.position();
    const tokens = this.inner.nextBatch();
    return { tokens, weights: this.inner.lastBatchWeights?.(), position };
  }
}
