// A prepared dataset on disk: token shards per split, a document index per
// split and meta.json, written last, which makes the folder a dataset:
//
//   meta.json           tokenizer, vocabulary, dtype, sources with sizes and sha256, split rule, counts
//   train-00000.bin …   token ids: uint8 (byte tokenizer), little-endian uint16, or uint32 when the vocabulary needs it; documents
//                       concatenated, each followed by the tokenizer's end-of-document id
//   train.idx           little-endian uint64: where each document starts in the split, then the split's length
//   val-00000.bin …, val.idx
//
// Splits are read through file handles a window at a time, never whole.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from './errors.ts';

/** Bump when the layout or meaning changes, so old datasets are prepared again, not misread. */
export const FORMAT = 'normlab-tokens/3';
const SPLITS = ['train', 'val'] as const;
export type Split = (typeof SPLITS)[number];
export type Dtype = 'uint8' | 'uint16' | 'uint32';
export type TokenArray = Uint8Array | Uint16Array | Uint32Array;

export interface SourceRecord {
  /** Absolute path of a file, or `corpus:<name>` for an embedded corpus. */
  source: string;
  bytes: number;
  mtimeMs?: number;
  sha256: string;
}

export interface SplitRecord {
  documents: number;
  tokens: number;
  shards: { file: string; tokens: number; sha256: string }[];
  indexSha256: string;
}

export interface DatasetMeta {
  format: typeof FORMAT;
  /** sha256 of the prepare inputs (sources, tokenizer, text field, split): what a reuse is checked against. */
  key: string;
  /** A built-in name, `t5`, or the tokenizer.json's path when prepared. */
  tokenizer: string;
  /** sha256 of the tokenizer.json: a dataset's tokenizer identity when it came from a file. */
  tokenizerSha256?: string;
  vocabSize: number;
  eot: number;
  /** Truncated rows' padding id. */
  pad: number;
  /** The tokenizer's post-processor ends each document with `eot` (T5): truncated rows keep it after the kept pieces. */
  appendsEnd: boolean;
  /** The largest id the dataset holds, and its token: what must fit model.vocab_size. */
  maxId: number;
  maxToken?: string;
  dtype: Dtype;
  textField: string;
  sources: SourceRecord[];
  /** With validation sources: their files. duplicatesDropped: validation documents dropped as exact copies of training documents (absent in datasets of older normlab). */
  split: { rule: string; seed: number; valFraction: number; valSources?: string[]; duplicatesDropped?: number };
  train: SplitRecord;
  val: SplitRecord;
  /** UTF-8 bytes of the documents' text, uncompressed. */
  textBytes: number;
  /** Lines left out by --skip-bad-lines, and documents with no text (which have nothing to learn). */
  skipped: { badLines: number; emptyDocuments: number };
  created: string;
}

/** How a dataset's truncated rows end (batches.ts). */
export const rowEnds = (meta: DatasetMeta) => ({ pad: meta.pad, ...(meta.appendsEnd && { keepEnd: meta.eot }) });

export const SOURCE_SPLIT_RULE = 'training sources are train; validation sources are val, less documents whose text equals a training document\'s';
export const SPLIT_RULE = 'document i (0-based, in source order) is validation iff hash32(seed, i) / 2^32 < valFraction, less validation documents whose text equals a training document\'s';

export const bytesPerToken = (dtype: Dtype) => ({ uint8: 1, uint16: 2, uint32: 4 })[dtype];
export const dtypeFor = (vocabSize: number): Dtype => (vocabSize <= 2 ** 8 ? 'uint8' : vocabSize <= 2 ** 16 ? 'uint16' : 'uint32');
export function newTokenArray(dtype: Dtype, length: number): TokenArray {
  return dtype === 'uint8' ? new Uint8Array(length) : dtype === 'uint16' ? new Uint16Array(length) : new Uint32Array(length);
}
export const shardName = (split: Split, i: number) => `${split}-${String(i).padStart(5, '0')}.bin`;
export const indexName = (split: Split) => `${split}.idx`;

export function isPreparedDataset(dir: string): boolean {
  return existsSync(join(dir, 'meta.json'));
}

/** meta.json of a complete dataset; throws naming the folder if it is absent, foreign or inconsistent with the files. */
export function readMeta(dir: string): DatasetMeta {
  const file = join(dir, 'meta.json');
  if (!existsSync(file)) throw new DataError(`${dir}: not a prepared dataset (no meta.json); prepare it with normlab data prepare`);
  let meta: DatasetMeta;
  try {
    meta = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataError(`${file}: not valid JSON (${(e as Error).message}); prepare the dataset again`);
  }
  if (meta.format !== FORMAT) {
    throw new DataError(`${dir}: dataset format ${JSON.stringify(meta.format)} is not ${FORMAT}; prepare it again with this normlab`);
  }
  for (const split of SPLITS) checkFiles(dir, meta, split);
  return meta;
}

/** Files already verified in this process, by path, size and modification time: a dataset is hashed once. */
const verified = new Set<string>();

function checkFiles(dir: string, meta: DatasetMeta, split: Split): void {
  const expect = (file: string, bytes: number, sha256: string) => {
    const path = join(dir, file);
    const stat = existsSync(path) ? statSync(path) : undefined;
    if (stat?.size !== bytes) {
      const found = stat ? `${stat.size} bytes` : 'missing';
      throw new DataError(`${path}: ${found}, but meta.json promises ${bytes} bytes; the dataset is damaged: prepare it again`);
    }
    const seen = `${path}:${stat.size}:${stat.mtimeMs}`;
    if (verified.has(seen)) return;
    if (sha256OfFile(path) !== sha256) {
      throw new DataError(`${path}: checksum mismatch with meta.json (the file was modified or corrupted); the dataset is damaged: prepare it again`);
    }
    verified.add(seen);
  };
  for (const shard of meta[split].shards) expect(shard.file, shard.tokens * bytesPerToken(meta.dtype), shard.sha256);
  expect(indexName(split), (meta[split].documents + 1) * 8, meta[split].indexSha256);
}

function sha256OfFile(path: string): string {
  const hash = createHash('sha256');
  const block = Buffer.alloc(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, block, 0, block.length, null)) > 0;) hash.update(block.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** Random access to one split's tokens and documents through file handles. */
export interface TokenStore {
  readonly length: number;
  readonly documents: number;
  /** Tokens [start, start + count) into out[offset …]. */
  read(start: number, count: number, out: Int32Array, offset: number): void;
  /** Where document d starts and ends (its end-of-document token included). */
  document(d: number): { start: number; end: number };
}

export class SplitReader implements TokenStore {
  readonly length: number;
  readonly documents: number;
  private readonly shards: { path: string; start: number; tokens: number; fd?: number }[] = [];
  private readonly index: { path: string; fd?: number };
  private readonly bytes: number;
  private scratch = new Uint8Array(1 << 16);

  /** Token ids ≥ vocabLimit (the model's embedding rows) are an error when read. */
  constructor(dir: string, meta: Pick<DatasetMeta, Split | 'dtype' | 'vocabSize'>, readonly split: Split, private readonly vocabLimit = meta.vocabSize) {
    let start = 0;
    for (const shard of meta[split].shards) {
      this.shards.push({ path: join(dir, shard.file), start, tokens: shard.tokens });
      start += shard.tokens;
    }
    this.length = start;
    this.documents = meta[split].documents;
    this.index = { path: join(dir, indexName(split)) };
    this.bytes = bytesPerToken(meta.dtype);
  }

  read(start: number, count: number, out: Int32Array, offset: number): void {
    if (start < 0 || start + count > this.length) throw new RangeError(`tokens [${start}, ${start + count}) outside the ${this.length} of ${this.split}`);
    let done = 0;
    while (done < count) {
      const at = start + done;
      const shard = this.shardAt(at);
      const n = Math.min(count - done, shard.start + shard.tokens - at, this.scratch.length / this.bytes);
      const raw = this.pread(shard, (at - shard.start) * this.bytes, n * this.bytes);
      const ids = this.bytes === 1 ? raw.subarray(0, n) : this.bytes === 2 ? new Uint16Array(raw.buffer, 0, n) : new Uint32Array(raw.buffer, 0, n);
      for (let i = 0; i < n; i++) {
        if (ids[i] >= this.vocabLimit) throw this.outOfVocab(ids[i], shard.path, at - shard.start + i);
        out[offset + done + i] = ids[i];
      }
      done += n;
    }
  }

  document(d: number): { start: number; end: number } {
    if (!(Number.isInteger(d) && d >= 0 && d < this.documents)) throw new RangeError(`document ${d} outside the ${this.documents} of ${this.split}`);
    const raw = this.pread(this.index, d * 8, 16);
    const view = new DataView(raw.buffer, 0, 16);
    return { start: Number(view.getBigUint64(0, true)), end: Number(view.getBigUint64(8, true)) };
  }

  close(): void {
    for (const f of [...this.shards, this.index]) {
      if (f.fd !== undefined) closeSync(f.fd);
      f.fd = undefined;
    }
  }

  private shardAt(token: number) {
    let lo = 0, hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.shards[mid].start <= token) lo = mid;
      else hi = mid - 1;
    }
    return this.shards[lo];
  }

  private pread(file: { path: string; fd?: number }, position: number, length: number): Uint8Array {
    if (length > this.scratch.length) this.scratch = new Uint8Array(length);
    file.fd ??= openSync(file.path, 'r');
    let got = 0;
    while (got < length) {
      const n = readSync(file.fd, this.scratch, got, length - got, position + got);
      if (n === 0) throw new DataError(`${file.path}: ends before byte ${position + length}; the dataset is damaged: prepare it again`);
      got += n;
    }
    return this.scratch;
  }

  private outOfVocab(id: number, path: string, offset: number): DataError {
    return new DataError(
      `${path}: token ${offset} is id ${id}, not below the model's vocab_size ${this.vocabLimit}; ` +
      'the dataset does not belong to this model: raise model.vocab_size or prepare it with the model\'s tokenizer');
  }
}

/** A prepared dataset, opened for reading; vocabLimit: see SplitReader. */
export function openDataset(dir: string, vocabLimit?: number): { meta: DatasetMeta; train: SplitReader; val: SplitReader } {
  const meta = readMeta(dir);
  return { meta, train: new SplitReader(dir, meta, 'train', vocabLimit), val: new SplitReader(dir, meta, 'val', vocabLimit) };
}
