// A corpus as two token streams (train, val), split by document and cached on
// disk: cacheDir/<key>/{train.bin,val.bin,meta.json}, key = sha256 of
// everything the tokens depend on.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from './errors.ts';
import { hash32 } from './rng.ts';
import { type TextSource, textSource } from './sources.ts';
import { tokenizer as makeTokenizer, type Tokenizer, type TokenizerName } from './tokenizers.ts';

export type TokenArray = Uint16Array | Uint32Array;

export interface TokenMeta {
  corpus: string;
  tokenizer: TokenizerName;
  vocabSize: number;
  eot: number;
  dtype: 'uint16' | 'uint32';
  valFraction: number;
  seed: number;
  /** sha256 of the documents' text: a changed corpus or text rendering makes a new cache. */
  textSha256: string;
  documents: { train: number; val: number };
  tokens: { train: number; val: number };
  /** Indices (into the corpus's document order) of the validation documents. */
  valDocuments: number[];
}

export interface PreparedTokens {
  train: TokenArray;
  val: TokenArray;
  meta: TokenMeta;
}

export interface PrepareOptions {
  corpus: string | TextSource;
  tokenizer: string;
  /** Fraction of documents held out for validation, in (0, 1). */
  valFraction: number;
  seed: number;
  cacheDir: string;
}

/** Bump when the cache layout or meaning changes, so old caches are not read. */
const CACHE_FORMAT = 1;

/** Tokens of the corpus, split train/val by document; read from the cache when present. */
export function prepareTokens(opts: PrepareOptions): PreparedTokens {
  if (!(opts.valFraction > 0 && opts.valFraction < 1)) {
    throw new DataError(`data.val_fraction must be in (0, 1), got ${opts.valFraction}`);
  }
  const source = typeof opts.corpus === 'string' ? textSource(opts.corpus) : opts.corpus;
  const tok = makeTokenizer(opts.tokenizer);
  const documents = [...source.documents()];
  const textSha256 = sha256(documents);
  const { valFraction, seed } = opts;
  const key = sha256([JSON.stringify({ CACHE_FORMAT, corpus: source.id, tokenizer: tok.name, valFraction, seed, textSha256 })]);
  const dir = join(opts.cacheDir, key);
  if (existsSync(join(dir, 'meta.json'))) return readCache(dir);

  const val = valDocuments(documents.length, valFraction, seed);
  const split = tokenize(documents, tok, val);
  const meta: TokenMeta = {
    corpus: source.id,
    tokenizer: tok.name,
    vocabSize: tok.vocabSize,
    eot: tok.eot,
    dtype: tok.vocabSize <= 65536 ? 'uint16' : 'uint32',
    valFraction,
    seed,
    textSha256,
    documents: { train: documents.length - val.size, val: val.size },
    tokens: { train: split.train.length, val: split.val.length },
    valDocuments: [...val].sort((a, b) => a - b),
  };
  const prepared = { train: toArray(split.train, meta.dtype), val: toArray(split.val, meta.dtype), meta };
  writeCache(opts.cacheDir, key, prepared);
  return prepared;
}

/** Throws unless every token id of the data fits the model's embedding. */
export function checkVocab(meta: TokenMeta, modelVocab: number): void {
  if (meta.vocabSize > modelVocab) {
    throw new DataError(
      `tokenizer ${meta.tokenizer} has ${meta.vocabSize} tokens but model.vocab_size is ${modelVocab}; ` +
      `set model.vocab_size to at least ${meta.vocabSize}`);
  }
}

/**
 * Documents whose hash of (seed, index) falls below valFraction; deterministic,
 * independent of the other documents, and never empty.
 */
export function valDocuments(count: number, valFraction: number, seed: number): Set<number> {
  if (count < 2) throw new DataError(`a train/val split needs at least 2 documents, the corpus has ${count}`);
  const u = Array.from({ length: count }, (_, i) => hash32(seed, i) / 2 ** 32);
  const val = new Set(u.flatMap((x, i) => (x < valFraction ? [i] : [])));
  if (val.size === 0) val.add(argBy(u, (a, b) => a < b));
  if (val.size === count) val.delete(argBy(u, (a, b) => a > b));
  return val;
}

function argBy(xs: number[], better: (a: number, b: number) => boolean): number {
  return xs.reduce((best, x, i) => (better(x, xs[best]) ? i : best), 0);
}

/** Each document's ids then eot, concatenated per split in document order. */
function tokenize(documents: string[], tok: Tokenizer, val: Set<number>): { train: number[]; val: number[] } {
  const out = { train: [] as number[], val: [] as number[] };
  documents.forEach((doc, i) => {
    const ids = out[val.has(i) ? 'val' : 'train'];
    for (const id of tok.encode(doc)) ids.push(id);
    ids.push(tok.eot);
  });
  return out;
}

function toArray(ids: number[], dtype: TokenMeta['dtype']): TokenArray {
  const out = makeArray(dtype, ids.length);
  out.set(ids);
  return out;
}

function makeArray(dtype: TokenMeta['dtype'], length: number): TokenArray {
  return dtype === 'uint16' ? new Uint16Array(length) : new Uint32Array(length);
}

/**
 * Writes into a temporary sibling, then renames it into place: rename is atomic,
 * so a killed prepare leaves only a `.partial-*` folder, never a half cache.
 */
function writeCache(cacheDir: string, key: string, prepared: PreparedTokens): void {
  const tmp = join(cacheDir, `${key}.partial-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'train.bin'), bytes(prepared.train));
  writeFileSync(join(tmp, 'val.bin'), bytes(prepared.val));
  writeFileSync(join(tmp, 'meta.json'), JSON.stringify(prepared.meta, null, 2) + '\n');
  try {
    renameSync(tmp, join(cacheDir, key));
  } catch (e) {
    // Another process finished the same cache first; its copy is identical.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(cacheDir, key, 'meta.json'))) throw e;
  }
}

function readCache(dir: string): PreparedTokens {
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as TokenMeta;
  return { train: readTokens(dir, 'train', meta), val: readTokens(dir, 'val', meta), meta };
}

function readTokens(dir: string, split: 'train' | 'val', meta: TokenMeta): TokenArray {
  const file = join(dir, `${split}.bin`);
  const length = meta.tokens[split];
  const expected = length * (meta.dtype === 'uint16' ? 2 : 4);
  if (!existsSync(file) || statSync(file).size !== expected) {
    throw new DataError(`token cache ${file} is not the ${expected} bytes meta.json promises; delete ${dir} to rebuild it`);
  }
  const out = makeArray(meta.dtype, length);
  // Copy into a fresh, aligned buffer (a Buffer's byteOffset may be odd); .bin files are little-endian, as every supported platform.
  new Uint8Array(out.buffer).set(readFileSync(file));
  return out;
}

function bytes(a: TokenArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function sha256(parts: string[]): string {
  const h = createHash('sha256');
  // Each part's length goes in first, so ["ab", "c"] and ["a", "bc"] differ.
  for (const p of parts) h.update(`${p.length}:`).update(p);
  return h.digest('hex');
}
