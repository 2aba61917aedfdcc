// `normlab data prepare`: sources → tokenizer workers → shards, written into a
// temporary sibling folder that is renamed into place once meta.json is in it,
// so an interrupted prepare never leaves something that reads as a dataset.
// An up-to-date dataset (same inputs, sources unchanged) is reused as it is.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ChunkResult } from './chunk.ts';
import { type DatasetMeta, dtypeFor, FORMAT, hashSplitOf, isPreparedDataset, readMeta, type SourceRecord, SOURCE_SPLIT_RULE, SPLIT_RULE, type Split } from './dataset.ts';
import { DataError } from './errors.ts';
import { defaultWorkers, startPool, type TokenizerPool } from './pool.ts';
import { type ReadProgress, readChunks } from './read.ts';
import { resolveSources, type SourceEntry } from './sources.ts';
import { tokenText } from './hf.ts';
import { type AnyTokenizerInfo, tokenizerInfo } from './tokenizers.ts';
import { SplitWriter, writeFileDurably } from './writer.ts';

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

/** sha256 of everything the tokens depend on but the sources' content (checked separately, by size, time and hash). */
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
 * Hash split: each document goes by a hash of its text (SPLIT_RULE), so the
 * copies of a page that C4-like crawls repeat never straddle train and
 * validation. With validation sources: they are read first for their
 * documents' hashes, the training sources are written to train noting which
 * of those hashes they hold, then the validation sources are read again and
 * written to val without the documents training also holds.
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
  const tally = { sourceBytes: 0, textBytes: 0, documents: 0, tokens: 0, maxId: -1, badLines: 0, emptyDocuments: 0, duplicates: 0, badExamples: [] as string[] };
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
  try {
    if (valEntries.length === 0) {
      await stream(pool, entries, progress, ctx, (source, r) => {
        writeDocs(r, (d) => hashSplitOf(r.hashes[d], inputs.splitSeed, inputs.valFraction));
        counted(source, r);
      });
    } else {
      const valHashes = new Set<string>();
      await stream(pool, valEntries, quiet, ctx, (_, r) => { for (const h of r.hashes) valHashes.add(h); });
      const inTrain = new Set<string>();
      await stream(pool, entries, progress, ctx, (source, r) => {
        for (const h of r.hashes) if (valHashes.has(h)) inTrain.add(h);
        writeDocs(r, () => 'train');
        counted(source, r);
      });
      await stream(pool, valEntries, progress, ctx, (source, r) => {
        writeDocs(r, (d) => (inTrain.has(r.hashes[d]) ? (tally.duplicates++, null) : 'val'));
        counted(source, r);
      });
    }
  } finally {
    await pool.close();
  }
  ctx.signal?.throwIfAborted();
  checkEverySourceHasDocuments([...entries, ...valEntries], perSource);
  const split = { train: writers.train.finish(), val: writers.val.finish() };
  checkSplit(split.train.documents, split.val.documents, inputs.valFraction, valEntries.length > 0);
  const meta: DatasetMeta = {
    format: FORMAT, key, tokenizer: info.name, ...(info.file && { tokenizerSha256: info.file.sha256 }),
    vocabSize: info.vocabSize, eot: info.eot, pad: info.pad, appendsEnd: info.appendsEnd,
    maxId: tally.maxId, ...(info.file && { maxToken: tokenText(info, tally.maxId) }), dtype,
    textField: inputs.textField, sources,
    split: valEntries.length > 0
      ? { rule: SOURCE_SPLIT_RULE, seed: inputs.splitSeed, valFraction: inputs.valFraction, valSources: valEntries.map((e) => e.id), duplicatesDropped: tally.duplicates }
      : { rule: SPLIT_RULE, seed: inputs.splitSeed, valFraction: inputs.valFraction },
    train: split.train, val: split.val,
    textBytes: tally.textBytes,
    skipped: { badLines: tally.badLines, emptyDocuments: tally.emptyDocuments },
    created: new Date().toISOString(),
  };
  return { meta, badExamples: tally.badExamples };
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

function checkSplit(train: number, val: number, valFraction: number, bySource: boolean): void {
  if (bySource && val === 0) throw new DataError('every validation document is also a training document (dropped as duplicates): the validation set is empty; name other validation sources');
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
