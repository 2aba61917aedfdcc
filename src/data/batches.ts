// Batches of token windows, nanoGPT-style: the split's documents are one
// stream (eot between them) cut into windows of T+1 tokens at stride T, so
// each window's targets (its last T tokens) start where the previous one's end.

import { DataError } from './errors.ts';
import { hash32, Rng } from './rng.ts';
import type { TokenArray } from './tokens.ts';

/** Where the next batch starts: `index` into epoch `epoch`'s window order. */
export interface BatchPosition {
  epoch: number;
  index: number;
}

/**
 * Training batches: every epoch visits each window once, in a permutation
 * drawn from (seed, epoch); a batch may run across an epoch boundary.
 */
export class PackedBatches {
  readonly windows: number;
  private readonly tokens: TokenArray;
  private readonly batchSize: number;
  private readonly seqLen: number;
  private readonly seed: number;
  private epoch = 0;
  private index = 0;
  private order: Uint32Array;

  /** B = batchSize windows per batch, each of T+1 = seqLen+1 tokens (inputs t[:T], targets t[1:]). */
  constructor(tokens: TokenArray, batchSize: number, seqLen: number, seed: number) {
    this.tokens = tokens;
    this.batchSize = batchSize;
    this.seqLen = seqLen;
    this.seed = seed;
    this.windows = windowCount(tokens.length, seqLen);
    if (this.windows < 1) throw tooShort('train', tokens.length, `${seqLen + 1} of one window`);
    this.order = permutation(this.windows, seed, 0);
  }

  /** The batches an uninterrupted run would see from `position` on. */
  static restore(tokens: TokenArray, batchSize: number, seqLen: number, seed: number, position: BatchPosition): PackedBatches {
    const batches = new PackedBatches(tokens, batchSize, seqLen, seed);
    batches.seek(position);
    return batches;
  }

  position(): BatchPosition {
    return { epoch: this.epoch, index: this.index };
  }

  seek({ epoch, index }: BatchPosition): void {
    if (!(Number.isInteger(epoch) && epoch >= 0 && Number.isInteger(index) && index >= 0 && index < this.windows)) {
      throw new DataError(`batch position {epoch: ${epoch}, index: ${index}} is outside 0 ≤ index < ${this.windows} windows`);
    }
    if (epoch !== this.epoch) this.order = permutation(this.windows, this.seed, epoch);
    this.epoch = epoch;
    this.index = index;
  }

  /** B windows as token ids, row-major [B, T+1]. */
  next(): Int32Array {
    const { batchSize: B, seqLen: T } = this;
    const out = new Int32Array(B * (T + 1));
    for (let b = 0; b < B; b++) {
      const start = this.order[this.index] * T;
      out.set(this.tokens.subarray(start, start + T + 1), b * (T + 1));
      this.advance();
    }
    return out;
  }

  private advance(): void {
    if (++this.index < this.windows) return;
    this.epoch++;
    this.index = 0;
    this.order = permutation(this.windows, this.seed, this.epoch);
  }
}

/**
 * The first n batches of consecutive windows of the validation split, in order
 * (fewer if the split is short): every val token after the first is a target once.
 */
export function validationBatches(val: TokenArray, batchSize: number, seqLen: number, n: number): Int32Array[] {
  const count = Math.min(n, Math.floor(windowCount(val.length, seqLen) / batchSize));
  if (count < 1) throw tooShort('val', val.length, `${batchSize * seqLen + 1} of one batch`);
  const size = batchSize * (seqLen + 1);
  return Array.from({ length: count }, (_, i) => {
    const out = new Int32Array(size);
    for (let b = 0; b < batchSize; b++) {
      const start = (i * batchSize + b) * seqLen;
      out.set(val.subarray(start, start + seqLen + 1), b * (seqLen + 1));
    }
    return out;
  });
}

function windowCount(tokens: number, seqLen: number): number {
  return Math.max(0, Math.floor((tokens - 1) / seqLen));
}

/** Fisher-Yates over 0..n-1 with an Rng seeded from (seed, epoch). */
function permutation(n: number, seed: number, epoch: number): Uint32Array {
  const rng = new Rng(hash32(seed, epoch));
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.nextFloat() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function tooShort(split: string, tokens: number, needed: string): DataError {
  return new DataError(
    `the ${split} split has ${tokens} tokens, fewer than the ${needed}; ` +
    'lower the batch size or sequence length, or use a larger corpus / val_fraction');
}
