// `normlab data prepare`: sources → tokenizer workers → shards, written into a
// temporary sibling folder that is renamed into place once meta.json is in it,
// so an interrupted prepare never leaves something that reads as a dataset.
// An up-to-date dataset (same inputs, sources unchanged) is reused as it is.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ChunkResult } from './chunk.ts';
import {
  type DatasetMeta, type Dtype, dtypeFor, FORMAT, indexName, isPreparedDataset, newTokenArray, readMeta, type SourceRecord, SOURCE_SPLIT_RULE, SPLIT_RULE, type Split,
  SplitReader, type SplitRecord,
} from './dataset.ts';
import { DataError } from './errors.ts';
import { defaultWorkers, startPool, type TokenizerPool } from './pool.ts';
import { type ReadProgress, readChunks } from './read.ts';
import { hash32 } from './rng.ts';
import { resolveSources, type SourceEntry } from './sources.ts';
import { tokenText } from './hf.ts';
import { type AnyTokenizerInfo, tokenizerInfo } from './tokenizers.ts';
import { SplitWriter, writeAll, writeFileDurably } from './writer.ts';

export interface PrepareOptions {
  /** Corpus names, files, folders, globs (see sources.ts). */
  sources: readonly string[];
  /** A built-in name, `t5`, or a tokenizer.json (or a folder holding one). */
  tokenizer: string;
  /** The end-of-document token of a tokenizer.json, when its files do not tell. */
  eosToken?: string;
  out: string;
  /** Validation sources (C4's c4-validation.*.json.gz): all their documents but those training also holds are the val split; absent: the hash split. */
  valSources?: readonly string[];
  /** The JSON-lines field holding the text; C4's `text` by default. */
  textField?: string;
  valFraction?: number;
  splitSeed?: number;
  skipBadLines?: boolean;
  /** Tokenizer threads; 0 = this thread; absent: by source size and cores. */
  workers?: number;
  /** Rebuild even when up to date. */
  force?: boolean;
  /** Tokens per shard file (shards end at a document boundary). */
  shardTokens?: number;
  onProgress?(p: PrepareProgress): void;
  signal?: AbortSignal;
}

export interface PrepareProgress {
  sourceBytes: number;
  /** Uncompressed text tokenized so far. */
  textBytes: number;
  totalSourceBytes: number;
  documents: number;
  tokens: number;
  seconds: number;
}

export interface PrepareResult {
  dir: string;
  meta: DatasetMeta;
  reused: boolean;
  seconds: number;
  workers: number;
  /** The first few lines --skip-bad-lines left out. */
  badExamples: string[];
}

export const DEFAULTS = { textField: 'text', valFraction: 0.05, splitSeed: 0, shardTokens: 1 << 27 } as const;

/** `tokenizer`: a built-in name, or `sha256:<hex>` of a tokenizer.json (its identity, wherever the file lies). */
type Inputs = Required<Pick<PrepareOptions, 'textField' | 'valFraction' | 'splitSeed' | 'skipBadLines'>> & { tokenizer: string; eosToken?: string };

/** The prepare inputs' tokenizer identity. */
export const tokenizerIdentity = (info: AnyTokenizerInfo) => (info.file ? `sha256:${info.file.sha256}` : info.name);

export async function prepareDataset(opts: PrepareOptions): Promise<PrepareResult> {
  const started = performance.now();
  const info = tokenizerInfo(opts.tokenizer, opts.eosToken);
  const inputs = checkInputs(opts, info);
  const entries = resolveSources(opts.sources);
  const valEntries = opts.valSources ? resolveSources(opts.valSources) : [];
  checkDisjoint(entries, valEntries);
  const key = inputKey(entries, inputs, valEntries);
  const out = resolve(opts.out);
  const elapsed = () => (performance.now() - started) / 1000;
  const upToDate = !opts.force && reusable(out, key, [...entries, ...valEntries]);
  if (upToDate) return { dir: out, meta: upToDate, reused: true, seconds: elapsed(), workers: 0, badExamples: [] };
  if (existsSync(out) && !isPreparedDataset(out) && readdirSync(out).length > 0) {
    throw new DataError(`${out}: the folder exists and is not a prepared dataset; refusing to write into it: choose a new or empty --out`);
  }
  removeAbandoned(out);
  const tmp = `${out}.partial-${process.pid}-${Date.now()}`;
  mkdirSync(tmp, { recursive: true });
  try {
    const workers = opts.workers ?? defaultWorkers([...entries, ...valEntries].reduce((n, e) => n + ('bytes' in e ? e.bytes : 0), 0), info);
    const built = await build(tmp, entries, valEntries, inputs, info, key, workers, { ...opts, started });
    writeFileDurably(join(tmp, 'meta.json'), JSON.stringify(built.meta, null, 2) + '\n');
    moveIntoPlace(tmp, out);
    return { dir: out, meta: built.meta, reused: false, seconds: elapsed(), workers, badExamples: built.badExamples };
  } catch (e) {
    throw writeProblem(e, out);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A full disk or another system error while writing, as one paragraph naming the dataset (exit 1); others unchanged. */
function writeProblem(e: unknown, out: string): unknown {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code) || (e as { exitCode?: unknown }).exitCode !== undefined) return e;
  return Object.assign(new Error(`${out}: could not write the dataset (${(e as Error).message}); the partial files were removed and nothing was kept: free space and prepare it again`), { exitCode: 1 });
}

function checkInputs(opts: PrepareOptions, info: AnyTokenizerInfo): Inputs {
  const inputs = {
    tokenizer: tokenizerIdentity(info),
    ...(opts.eosToken !== undefined && info.file && { eosToken: opts.eosToken }),
    textField: opts.textField ?? DEFAULTS.textField,
    valFraction: opts.valFraction ?? DEFAULTS.valFraction,
    splitSeed: opts.splitSeed ?? DEFAULTS.splitSeed,
    skipBadLines: opts.skipBadLines ?? false,
  };
  if (!(inputs.valFraction > 0 && inputs.valFraction < 1)) throw new DataError(`the validation fraction must be in (0, 1), got ${inputs.valFraction}`);
  if (!(Number.isInteger(inputs.splitSeed) && inputs.splitSeed >= 0)) throw new DataError(`the split seed must be an integer ≥ 0, got ${inputs.splitSeed}`);
  if (inputs.textField === '') throw new DataError('the text field name is empty');
  return inputs;
}

/**
 * sha256 of everything the tokens depend on but the sources' content (checked
 * separately, by size, time and hash). The hash split's rule is in it: datasets
 * prepared before validation copies of training documents were dropped are
 * prepared again, not reused as if they had been.
 */
export function inputKey(entries: SourceEntry[], inputs: Inputs, valEntries: SourceEntry[] = []): string {
  const split = valEntries.length > 0 ? { valSources: valEntries.map((e) => e.id) } : { splitRule: SPLIT_RULE };
  const identity = { FORMAT, sources: entries.map((e) => e.id), ...split, ...inputs };
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}

function reusable(out: string, key: string, entries: SourceEntry[]): DatasetMeta | undefined {
  if (!isPreparedDataset(out)) return undefined;
  let meta: DatasetMeta;
  try {
    meta = readMeta(out);
  } catch (e) {
    if (e instanceof DataError) return undefined; // damaged or foreign: rebuild
    throw e;
  }
  return meta.key === key && entries.every((e, i) => unchanged(e, meta.sources[i])) ? meta : undefined;
}

/** Same size and modification time, or (a copied file) same size and content. */
function unchanged(entry: SourceEntry, record: SourceRecord | undefined): boolean {
  if (!record || record.source !== entry.id) return false;
  if (entry.kind === 'corpus') return true; // shipped with the package-lock's version
  const stat = statSync(entry.path);
  if (stat.size !== record.bytes) return false;
  return stat.mtimeMs === record.mtimeMs || sha256File(entry.path) === record.sha256;
}

function sha256File(path: string): string {
  const hash = createHash('sha256');
  const block = Buffer.alloc(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, block)) > 0;) hash.update(block.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

interface BuildContext {
  started: number;
  shardTokens?: number;
  onProgress?(p: PrepareProgress): void;
  signal?: AbortSignal;
}

/**
 * Hash split: document i goes by hash32(seed, i); the validation documents'
 * text hashes are kept, the training documents' written to a file beside the
 * shards, and once every document is seen the validation documents a training
 * document has the text of are dropped (C4-like crawls repeat pages). With
 * validation sources: they are read first for their documents' hashes, the
 * training sources are written to train noting which of those hashes they
 * hold, then the validation sources are read again and written to val
 * without the documents training also holds. Either way memory grows with the
 * validation set, not the corpus, and training documents are never dropped.
 */
async function build(
  dir: string, entries: SourceEntry[], valEntries: SourceEntry[], inputs: Inputs, info: AnyTokenizerInfo, key: string, workers: number, ctx: BuildContext,
) {
  const dtype = dtypeFor(info.vocabSize);
  const writers: Record<Split, SplitWriter> = {
    train: new SplitWriter(dir, 'train', dtype, ctx.shardTokens ?? DEFAULTS.shardTokens),
    val: new SplitWriter(dir, 'val', dtype, ctx.shardTokens ?? DEFAULTS.shardTokens),
  };
  const bytesOf = (list: SourceEntry[]) => list.reduce((n, e) => n + ('bytes' in e ? e.bytes : 0), 0);
  const totalSourceBytes = bytesOf(entries) + 2 * bytesOf(valEntries);
  const tally = { sourceBytes: 0, textBytes: 0, documents: 0, tokens: 0, maxId: -1, badLines: 0, emptyDocuments: 0, badExamples: [] as string[] };
  const perSource = new Map<string, number>();
  const sources: SourceRecord[] = [];
  const counted = (source: string, r: ChunkResult) => {
    perSource.set(source, (perSource.get(source) ?? 0) + r.lengths.length);
    tally.maxId = Math.max(tally.maxId, r.maxId);
    tally.textBytes += r.textBytes;
    tally.badLines += r.badLines;
    tally.emptyDocuments += r.emptyDocuments;
    tally.badExamples.push(...r.badExamples.slice(0, 5 - tally.badExamples.length));
    ctx.onProgress?.({ ...tally, totalSourceBytes: Math.max(totalSourceBytes, tally.sourceBytes), seconds: (performance.now() - ctx.started) / 1000 });
  };
  const writeDocs = (r: ChunkResult, splitOf: (d: number) => Split | null) => {
    let at = 0;
    r.lengths.forEach((length, d) => {
      const split = splitOf(d);
      if (split) {
        writers[split].add(r.tokens.subarray(at, at + length));
        tally.tokens += length;
        tally.documents++;
      }
      at += length;
    });
  };

  const pool = await startPool({ ...inputs, tokenizer: info }, workers);
  const progress = { onBytes: (n: number) => { tally.sourceBytes += n; }, onSource: (r: SourceRecord) => { sources.push(r); } };
  const quiet = { onBytes: progress.onBytes, onSource: () => {} };
  let copies: TrainingCopies;
  const valHashes: string[] = []; // the hash split's validation documents, in order
  try {
    if (valEntries.length === 0) {
      const trainHashes = new HashFile(join(dir, 'train-hashes.tmp'));
      try {
        let i = 0;
        await stream(pool, entries, progress, ctx, (source, r) => {
          const inTrain: string[] = [];
          writeDocs(r, (d) => {
            const split = hash32(inputs.splitSeed, i++) / 2 ** 32 < inputs.valFraction ? 'val' : 'train';
            (split === 'val' ? valHashes : inTrain).push(r.hashes[d]);
            return split;
          });
          trainHashes.append(inTrain);
          counted(source, r);
        });
        copies = new TrainingCopies(new Set(valHashes));
        copies.note(trainHashes.readAndRemove());
      } finally {
        trainHashes.close();
      }
    } else {
      const hashes = new Set<string>();
      await stream(pool, valEntries, quiet, ctx, (_, r) => { for (const h of r.hashes) hashes.add(h); });
      copies = new TrainingCopies(hashes);
      await stream(pool, entries, progress, ctx, (source, r) => {
        copies.note(r.hashes);
        writeDocs(r, () => 'train');
        counted(source, r);
      });
      await stream(pool, valEntries, progress, ctx, (source, r) => {
        writeDocs(r, (d) => copies.valUnlessCopied(r.hashes[d]));
        counted(source, r);
      });
    }
  } finally {
    await pool.close();
  }
  ctx.signal?.throwIfAborted();
  checkEverySourceHasDocuments([...entries, ...valEntries], perSource);
  const split = { train: writers.train.finish(), val: writers.val.finish() };
  if (copies.any && valEntries.length === 0) {
    const keep = (d: number) => copies.valUnlessCopied(valHashes[d]) !== null;
    split.val = rewriteVal(dir, { dtype, vocabSize: info.vocabSize, ...split }, ctx.shardTokens ?? DEFAULTS.shardTokens, keep);
  }
  checkSplit(split.train.documents, split.val.documents, inputs.valFraction, valEntries.length > 0, copies.dropped);
  const meta: DatasetMeta = {
    format: FORMAT, key, tokenizer: info.name, ...(info.file && { tokenizerSha256: info.file.sha256 }),
    vocabSize: info.vocabSize, eot: info.eot, pad: info.pad, appendsEnd: info.appendsEnd,
    maxId: tally.maxId, ...(info.file && { maxToken: tokenText(info, tally.maxId) }), dtype,
    textField: inputs.textField, sources,
    split: valEntries.length > 0
      ? { rule: SOURCE_SPLIT_RULE, seed: inputs.splitSeed, valFraction: inputs.valFraction, valSources: valEntries.map((e) => e.id), duplicatesDropped: copies.dropped }
      : { rule: SPLIT_RULE, seed: inputs.splitSeed, valFraction: inputs.valFraction, duplicatesDropped: copies.dropped },
    train: split.train, val: split.val,
    textBytes: tally.textBytes,
    skipped: { badLines: tally.badLines, emptyDocuments: tally.emptyDocuments },
    created: new Date().toISOString(),
  };
  return { meta, badExamples: tally.badExamples };
}

/** Validation documents' text hashes, and those a training document has too: such validation documents are dropped, and counted. */
class TrainingCopies {
  private readonly copied = new Set<string>();
  dropped = 0;

  constructor(private readonly valHashes: ReadonlySet<string>) {}

  /** Training documents' hashes, in any order. */
  note(hashes: Iterable<string>): void {
    for (const h of hashes) if (this.valHashes.has(h)) this.copied.add(h);
  }

  get any(): boolean {
    return this.copied.size > 0;
  }

  /** A validation document's split: val, or null (counted as dropped) when a training document has its text. */
  valUnlessCopied(hash: string): Split | null {
    if (!this.copied.has(hash)) return 'val';
    this.dropped++;
    return null;
  }
}

const SHA1_BYTES = 20;

/** Text hashes appended to a file (in the temporary folder) and read back once: the training documents', which may number billions. */
class HashFile {
  private fd?: number;

  constructor(private readonly path: string) {
    this.fd = openSync(path, 'wx');
  }

  append(hashes: string[]): void {
    if (hashes.length > 0) writeAll(this.fd!, Buffer.concat(hashes.map((h) => Buffer.from(h, 'base64'))));
  }

  /** Every hash appended, in order; the file is removed once read (it is no part of the dataset). */
  *readAndRemove(): Generator<string> {
    this.close();
    const block = Buffer.alloc(SHA1_BYTES << 16);
    const fd = openSync(this.path, 'r');
    try {
      for (let n; (n = readSync(fd, block, 0, block.length, null)) > 0;) {
        if (n % SHA1_BYTES !== 0) throw new Error(`${this.path}: read ${n} bytes, not whole hashes`); // a bug, not bad input
        for (let at = 0; at < n; at += SHA1_BYTES) yield block.toString('base64', at, at + SHA1_BYTES);
      }
    } finally {
      closeSync(fd);
      rmSync(this.path);
    }
  }

  /** Closes the file for writing (on failure the temporary folder, file and all, is removed). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * The val split written again with only the documents `keep` accepts (asked
 * for every document, in order): the hash split's copies of training
 * documents are known only once every training document has been seen.
 */
function rewriteVal(dir: string, written: Pick<DatasetMeta, Split | 'dtype' | 'vocabSize'>, shardTokens: number, keep: (d: number) => boolean): SplitRecord {
  const unfiltered = join(dir, 'val-unfiltered');
  mkdirSync(unfiltered);
  for (const file of [...written.val.shards.map((s) => s.file), indexName('val')]) renameSync(join(dir, file), join(unfiltered, file));
  const reader = new SplitReader(unfiltered, written, 'val');
  const writer = new SplitWriter(dir, 'val', written.dtype, shardTokens);
  try {
    for (let d = 0; d < reader.documents; d++) {
      if (keep(d)) writer.add(readDocument(reader, d, written.dtype));
    }
  } finally {
    reader.close();
  }
  rmSync(unfiltered, { recursive: true });
  return writer.finish();
}

function readDocument(reader: SplitReader, d: number, dtype: Dtype) {
  const { start, end } = reader.document(d);
  const ids = new Int32Array(end - start);
  reader.read(start, end - start, ids, 0);
  const doc = newTokenArray(dtype, ids.length);
  doc.set(ids);
  return doc;
}

/** Every chunk of `entries` through the pool, results handed on in source order. */
async function stream(
  pool: TokenizerPool, entries: SourceEntry[], progress: ReadProgress, ctx: BuildContext, onResult: (source: string, r: ChunkResult) => void,
): Promise<void> {
  const inFlight: { source: string; result: Promise<ChunkResult> }[] = [];
  for await (const chunk of readChunks(entries, progress)) {
    ctx.signal?.throwIfAborted();
    const result = pool.run(chunk);
    result.catch(() => {}); // awaited in order below; a later chunk's failure must not be an unhandled rejection meanwhile
    inFlight.push({ source: chunk.source, result });
    if (inFlight.length >= pool.capacity) {
      const next = inFlight.shift()!;
      onResult(next.source, await next.result);
    }
  }
  for (const next of inFlight) onResult(next.source, await next.result);
}

function checkDisjoint(entries: SourceEntry[], valEntries: SourceEntry[]): void {
  const train = new Set(entries.map((e) => e.id));
  const both = valEntries.find((e) => train.has(e.id));
  if (both) throw new DataError(`${both.id}: named as both a training source (data.source) and a validation source (data.val_source); name each file once`);
}

function checkEverySourceHasDocuments(entries: SourceEntry[], perSource: Map<string, number>): void {
  for (const e of entries) {
    if (!perSource.get(e.id)) throw new DataError(`${e.id}: no documents (every line is blank, has empty text or was skipped as bad)`);
  }
}

function checkSplit(train: number, val: number, valFraction: number, bySource: boolean, dropped: number): void {
  if (val === 0 && dropped > 0) {
    throw new DataError(`every validation document is also a training document (${dropped} dropped as duplicates): the validation set is empty; ` +
      (bySource ? 'name other validation sources' : 'raise --val-fraction (data.val_fraction) or change --split-seed (data.split_seed)'));
  }
  if (val === 0 || train === 0) {
    const empty = val === 0 ? 'validation' : 'training';
    throw new DataError(
      `the split left the ${empty} set empty (${train + val} documents at val_fraction ${valFraction}); ` +
      `${val === 0 ? 'raise' : 'lower'} --val-fraction (data.val_fraction) or add documents`);
  }
}

/** Renames the finished folder to `out`, replacing what was there (the previous dataset, or an empty folder). */
function moveIntoPlace(tmp: string, out: string): void {
  if (!existsSync(out)) {
    renameSync(tmp, out);
    return;
  }
  const old = `${out}.old-${process.pid}-${Date.now()}`;
  renameSync(out, old);
  renameSync(tmp, out);
  rmSync(old, { recursive: true, force: true });
}

/** Removes `.partial-`/`.old-` siblings of `out` left by prepares that were killed (their process is gone). */
function removeAbandoned(out: string): void {
  const parent = dirname(out);
  if (!existsSync(parent)) return;
  const pattern = new RegExp(`^${escapeRegExp(basename(out))}\\.(partial|old)-(\\d+)-\\d+$`);
  for (const name of readdirSync(parent)) {
    const match = pattern.exec(name);
    if (match && !isAlive(Number(match[2]))) rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
