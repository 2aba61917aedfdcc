// Sources as a stream of chunks for the tokenizer workers: a few MiB of whole
// JSON lines (raw bytes, cut after a newline) or a batch of whole documents.
// Files are read through streams, so memory holds a chunk or two whatever the
// file size; each file's sha256 is taken on the way.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { pipeline, type Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { SourceRecord } from './dataset.ts';
import { DataError } from './errors.ts';
import { type FileEntry, type SourceEntry, textSource } from './sources.ts';

const CHUNK_BYTES = 1 << 20;
/** A longer JSON line or text file is refused: one document must fit in memory, many times over. */
const MAX_DOCUMENT_BYTES = 64 << 20;

/** JSON lines from `source`, starting at line `firstLine` (1-based); or whole documents, each named by its label. */
export type Chunk =
  | { source: string; firstLine: number; jsonl: Uint8Array }
  | { source: string; texts: string[]; labels: string[] };

export interface ReadProgress {
  /** Bytes of the sources read so far (as stored: gzipped files count compressed). */
  onBytes(bytes: number): void;
  /** A source fully read, with its hash. */
  onSource(record: SourceRecord): void;
}

export async function* readChunks(entries: SourceEntry[], progress: ReadProgress): AsyncGenerator<Chunk> {
  for (const entry of entries) {
    if (entry.kind === 'corpus') yield* corpusChunks(entry.name, progress);
    else if (entry.kind === 'text') yield textFileChunk(entry, progress);
    else yield* jsonlChunks(entry, progress);
  }
}

function* corpusChunks(name: string, progress: ReadProgress): Generator<Chunk> {
  const hash = createHash('sha256');
  const source = `corpus:${name}`;
  let texts: string[] = [], labels: string[] = [], bytes = 0, total = 0, index = 0;
  for (const text of textSource(name).documents()) {
    const size = Buffer.byteLength(text);
    hash.update(`${size}:`).update(text); // length first, so ["ab", "c"] and ["a", "bc"] differ
    texts.push(text);
    labels.push(`${source} document ${index++}`);
    bytes += size;
    total += size;
    progress.onBytes(size);
    if (bytes >= CHUNK_BYTES) {
      yield { source, texts, labels };
      texts = [], labels = [], bytes = 0;
    }
  }
  if (texts.length > 0) yield { source, texts, labels };
  progress.onSource({ source, bytes: total, sha256: hash.digest('hex') });
}

function textFileChunk(entry: FileEntry, progress: ReadProgress): Chunk {
  if (entry.bytes > MAX_DOCUMENT_BYTES) {
    throw new DataError(`${entry.path}: ${entry.bytes} bytes is more than the ${MAX_DOCUMENT_BYTES} a text file (one document) may have; split it, or convert it to JSON lines`);
  }
  const raw = readFileSync(entry.path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new DataError(`${entry.path}: not UTF-8 text`);
  }
  progress.onBytes(raw.length);
  progress.onSource(fileRecord(entry, createHash('sha256').update(raw)));
  return { source: entry.path, texts: [text], labels: [entry.path] };
}

async function* jsonlChunks(entry: FileEntry, progress: ReadProgress): AsyncGenerator<Chunk> {
  const hash = createHash('sha256');
  const hashed = new Transform({
    transform(piece: Buffer, _encoding, done) {
      hash.update(piece);
      progress.onBytes(piece.length);
      done(null, piece);
    },
  });
  const stages = [createReadStream(entry.path, { highWaterMark: 1 << 20 }), hashed, ...(entry.gzip ? [createGunzip({ chunkSize: 1 << 18 })] : [])];
  // pipeline destroys every stage on a failure, so the error reaches the loop below.
  const input = pipeline(stages, () => {}) as unknown as Readable;
  const lines = new LineChunker(entry.path);
  try {
    for await (const piece of input) {
      const chunk = lines.push(piece as Buffer);
      if (chunk) yield chunk;
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    const what = entry.gzip ? 'reading the gzip data failed (a truncated or corrupt file?)' : 'reading failed';
    throw new DataError(`${entry.path}: ${what}: ${(e as Error).message}`);
  }
  const last = lines.end();
  if (last) yield last;
  progress.onSource(fileRecord(entry, hash));
}

function fileRecord(entry: FileEntry, hash: Hash) {
  return { source: entry.path, bytes: entry.bytes, mtimeMs: entry.mtimeMs, sha256: hash.digest('hex') };
}

const NEWLINE = 0x0a;

/** Collects stream pieces and cuts them into chunks of whole lines, counting lines for error messages. */
class LineChunker {
  private pieces: Uint8Array[] = [];
  private bytes = 0;
  /** Where the last newline is: the piece's index and the offset just after it. */
  private cut: { piece: number; at: number } | null = null;
  private line = 1;

  constructor(private readonly source: string) {}

  push(piece: Uint8Array): Chunk | null {
    const nl = piece.lastIndexOf(NEWLINE);
    this.pieces.push(piece);
    this.bytes += piece.length;
    if (nl >= 0) this.cut = { piece: this.pieces.length - 1, at: nl + 1 };
    if (this.bytes < CHUNK_BYTES) return null;
    if (!this.cut) {
      if (this.bytes > MAX_DOCUMENT_BYTES) {
        throw new DataError(`${this.source}:${this.line}: the line is longer than ${MAX_DOCUMENT_BYTES} bytes; is this a JSON-lines file?`);
      }
      return null;
    }
    const { piece: p, at } = this.cut;
    const rest = this.pieces[p].subarray(at);
    const chunk = this.take([...this.pieces.slice(0, p), this.pieces[p].subarray(0, at)]);
    this.pieces = rest.length > 0 ? [rest, ...this.pieces.slice(p + 1)] : this.pieces.slice(p + 1);
    this.bytes = this.pieces.reduce((n, x) => n + x.length, 0);
    this.cut = null;
    return chunk;
  }

  /** The last lines (the file need not end with a newline). */
  end(): Chunk | null {
    return this.bytes > 0 ? this.take(this.pieces) : null;
  }

  private take(pieces: Uint8Array[]): Chunk {
    // A fresh buffer, not Buffer.concat's pool: the chunk's buffer is transferred to a worker.
    const jsonl = new Uint8Array(pieces.reduce((n, x) => n + x.length, 0));
    let at = 0;
    for (const piece of pieces) {
      jsonl.set(piece, at);
      at += piece.length;
    }
    const chunk = { source: this.source, firstLine: this.line, jsonl };
    for (let i = jsonl.indexOf(NEWLINE); i >= 0; i = jsonl.indexOf(NEWLINE, i + 1)) this.line++;
    return chunk;
  }
}
