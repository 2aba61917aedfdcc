// Training batches from a split on disk, in the two ways the config offers:
//
// - packed (nanoGPT): the split's documents are one stream (end id between
//   them) cut into windows of T+1 tokens at stride T, so each window's targets
//   (its last T tokens) start where the previous one's end;
// - truncate (the Mix-LN / GaLore recipe): one row per document, its first
//   T+1 tokens padded, and the padding's targets weigh 0 in the loss. With a
//   T5-style tokenizer (its post-processor appends the end token) a long
//   document's row is its first T pieces then that end token, as Hugging
//   Face's truncation keeps the post-processor's tokens: the papers' rows.
//
// Every epoch visits each window (document) once, in an order drawn from
// (seed, epoch); a batch may run across an epoch boundary. The position in that
// order is all a checkpoint needs to resume the same batches.

import type { TokenStore } from './dataset.ts';
import { DataError } from './errors.ts';
import { Permutation } from './permutation.ts';
import { hash32 } from './rng.ts';

/** Where the next batch starts: `index` into epoch `epoch`'s order. */
export interface BatchPosition {
  epoch: number;
  index: number;
}

export type Batching = 'packed' | 'truncate';

/** How truncated rows end: the padding id, and the end id a T5-style tokenizer keeps last (absent: rows are plain prefixes). */
export interface RowEnds {
  pad: number;
  keepEnd?: number;
}

/** Rows of T+1 tokens, row-major [B, T+1]; `count` of them exist per epoch. */
interface Rows {
  count: number;
  /** Writes row r into out at [b]; returns how many of its T targets are real. */
  read(r: number, out: Int32Array, b: number): number;
}

export class Batches {
  private epoch = 0;
  private index = 0;
  private order: Permutation;
  private weights?: Float32Array;

  private constructor(
    private readonly rows: Rows, private readonly batchSize: number, private readonly seqLen: number,
    private readonly seed: number, private readonly weighted: boolean,
  ) {
    this.order = new Permutation(rows.count, hash32(seed, 0));
  }

  /** B rows per batch, each of T+1 = seqLen+1 tokens (inputs t[:T], targets t[1:]). */
  static of(mode: Batching, split: TokenStore, batchSize: number, seqLen: number, seed: number, ends: RowEnds): Batches {
    const rows = mode === 'packed' ? packedRows(split, seqLen) : truncatedRows(split, seqLen, ends);
    if (rows.count < 1) throw tooShort('train', split, mode, seqLen);
    return new Batches(rows, batchSize, seqLen, seed, mode === 'truncate');
  }

  /** Rows (windows or documents) per epoch. */
  get rowsPerEpoch(): number {
    return this.rows.count;
  }

  position(): BatchPosition {
    return { epoch: this.epoch, index: this.index };
  }

  seek({ epoch, index }: BatchPosition): void {
    if (!(Number.isInteger(epoch) && epoch >= 0 && Number.isInteger(index) && index >= 0 && index < this.rows.count)) {
      throw new DataError(`batch position {epoch: ${epoch}, index: ${index}} is outside 0 ≤ index < ${this.rows.count} rows`);
    }
    if (epoch !== this.epoch) this.order = new Permutation(this.rows.count, hash32(this.seed, epoch));
    this.epoch = epoch;
    this.index = index;
  }

  /** B rows as token ids, row-major [B, T+1]. */
  next(): Int32Array {
    const { batchSize: B, seqLen: T } = this;
    const tokens = new Int32Array(B * (T + 1));
    const weights = new Float32Array(B * T);
    for (let b = 0; b < B; b++) {
      const real = this.rows.read(this.order.at(this.index), tokens, b);
      weights.fill(1, b * T, b * T + real);
      this.advance();
    }
    this.weights = this.weighted ? weights : undefined;
    return tokens;
  }

  /** Loss weights [B, T] of the batch next() returned last (1 = real target, 0 = padding); undefined when packed, where every target is real. */
  lastWeights(): Float32Array | undefined {
    return this.weights;
  }

  private advance(): void {
    if (++this.index < this.rows.count) return;
    this.seek({ epoch: this.epoch + 1, index: 0 });
  }
}

function packedRows(split: TokenStore, T: number): Rows {
  return {
    count: Math.max(0, Math.floor((split.length - 1) / T)),
    read: (r, out, b) => {
      split.read(r * T, T + 1, out, b * (T + 1));
      return T;
    },
  };
}

function truncatedRows(split: TokenStore, T: number, { pad, keepEnd }: RowEnds): Rows {
  return {
    count: split.documents,
    read: (d, out, b) => {
      const { start, end } = split.document(d);
      const n = Math.min(end - start, T + 1);
      const row = b * (T + 1);
      if (keepEnd !== undefined && end - start > T + 1) {
        split.read(start, T, out, row);
        out[row + T] = keepEnd;
      } else split.read(start, n, out, row);
      out.fill(pad, row + n, row + T + 1);
      return n - 1; // targets are tokens 1 … n-1 of the row
    },
  };
}

/**
 * The validation batches: the first n batches of the split in order (fewer if
 * it is short), consecutive windows (packed) or the first documents (truncate,
 * with their loss weights). With `tokens`, as many leading rows as hold that
 * many real targets instead, whatever the batch size (rows past them in the
 * last batch weigh 0), so every run of a study scores the same tokens; a
 * split holding fewer is scored whole.
 */
export function validationBatches(
  mode: Batching, split: TokenStore, batchSize: number, seqLen: number, n: number, ends: RowEnds, tokens?: number,
): { tokens: Int32Array[]; weights?: Float32Array[] } {
  const rows = mode === 'packed' ? packedRows(split, seqLen) : truncatedRows(split, seqLen, ends);
  const scratch = new Int32Array(seqLen + 1);
  const wanted = tokens === undefined ? undefined : rowsHolding(rows, tokens, scratch);
  const count = wanted === undefined ? Math.min(n, Math.floor(rows.count / batchSize)) : Math.ceil(wanted / batchSize);
  if (count < 1) throw tooShort('val', split, mode, seqLen, batchSize);
  const batches = Array.from({ length: count }, () => new Int32Array(batchSize * (seqLen + 1)));
  const weights = Array.from({ length: count }, () => new Float32Array(batchSize * seqLen));
  batches.forEach((batch, i) => {
    for (let b = 0; b < batchSize; b++) {
      const r = i * batchSize + b;
      if (r >= rows.count) batch.fill(ends.pad, b * (seqLen + 1), (b + 1) * (seqLen + 1)); // a split smaller than one batch: padding, weighing 0
      else {
        const real = rows.read(r, batch, b);
        if (wanted === undefined || r < wanted) weights[i].fill(1, b * seqLen, b * seqLen + real);
      }
    }
  });
  return mode === 'truncate' || wanted !== undefined ? { tokens: batches, weights } : { tokens: batches };
}

/** How many leading rows hold at least `tokens` real targets (all of them if fewer). */
function rowsHolding(rows: Rows, tokens: number, scratch: Int32Array): number {
  let sum = 0, r = 0;
  while (sum < tokens && r < rows.count) sum += rows.read(r++, scratch, 0);
  return r;
}

function tooShort(split: string, store: TokenStore, mode: Batching, seqLen: number, batchSize = 1): DataError {
  const unit = split === 'val' ? 'batch' : mode === 'packed' ? 'window' : 'row';
  const has = mode === 'packed'
    ? `${store.length} tokens, fewer than the ${batchSize * seqLen + 1}`
    : `${store.documents} documents, fewer than the ${batchSize}`;
  return new DataError(
    `the ${split} split has ${has} of one ${unit}; ` +
    'lower the batch size or sequence length, or use a larger corpus / val_fraction');
}
