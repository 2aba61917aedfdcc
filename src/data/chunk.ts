// One chunk of source → token ids, in a worker thread (or inline for small
// inputs): decode, parse JSON lines, pick the text field, tokenize in one
// batch, and end each document with the end-of-document id (appended unless
// the tokenizer's post-processor already put it there). A bad line is an error naming file and line, or,
// with skipBadLines, counted and left out.

import { createHash } from 'node:crypto';
import { dtypeFor, newTokenArray, type TokenArray } from './dataset.ts';
import { DataError } from './errors.ts';
import type { Chunk } from './read.ts';
import type { BatchTokenizer } from './tokenizers.ts';

export interface ChunkOptions {
  textField: string;
  skipBadLines: boolean;
}

export interface ChunkResult {
  /** Every document's ids then the end id, concatenated. */
  tokens: TokenArray;
  /** Each document's length in `tokens`. */
  lengths: Uint32Array;
  /** The largest id in `tokens` (-1 when empty). */
  maxId: number;
  /** UTF-8 bytes of the documents' text (what throughput is measured in). */
  textBytes: number;
  /** Each document's text hash (base64 sha1), in order: what exact copies between train and validation are found by. */
  hashes: string[];
  emptyDocuments: number;
  badLines: number;
  /** The first few bad lines' messages, for the summary. */
  badExamples: string[];
}

const EXAMPLES = 5;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function tokenizeChunk(chunk: Chunk, tok: BatchTokenizer, opts: ChunkOptions): Promise<ChunkResult> {
  const result = { emptyDocuments: 0, badLines: 0, badExamples: [] as string[], textBytes: 0 };
  const bad = (message: string) => {
    if (!opts.skipBadLines) throw new DataError(`${message}; fix it, or pass --skip-bad-lines (data.skip_bad_lines) to skip such lines`);
    if (result.badLines++ < EXAMPLES) result.badExamples.push(message);
  };
  const batch: string[] = [];
  const labels: string[] = [];
  for (const { label, text, error } of texts(chunk, opts.textField)) {
    if (error !== undefined) bad(`${label}: ${error}`);
    else if (text === '') result.emptyDocuments++;
    else {
      batch.push(text!);
      labels.push(label);
      result.textBytes += Buffer.byteLength(text!);
    }
  }
  const { ids, errors } = await tok.encodeBatch(batch);
  const docs: ArrayLike<number>[] = [];
  const hashes: string[] = [];
  ids.forEach((doc, i) => {
    if (doc === null) bad(`${labels[i]}: ${errors[i]}`);
    else {
      docs.push(doc);
      hashes.push(createHash('sha1').update(batch[i]).digest('base64'));
    }
  });
  return { ...concatenate(docs, tok.info), ...result, hashes };
}

type Text = { label: string; text?: string; error?: string };

function* texts(chunk: Chunk, field: string): Generator<Text> {
  if ('texts' in chunk) {
    for (const [i, text] of chunk.texts.entries()) yield { label: chunk.labels[i], text };
    return;
  }
  for (const [i, line] of lines(chunk.jsonl).entries()) {
    const label = `${chunk.source}:${chunk.firstLine + i}`;
    if (line === null) yield { label, error: 'not valid UTF-8' };
    else if (line.trim() !== '') yield { label, ...parseLine(line, field) };
  }
}

/** The chunk's lines, decoded; null for a line that is not UTF-8 (found line by line only when the chunk as a whole fails). */
function lines(bytes: Uint8Array): (string | null)[] {
  try {
    return utf8.decode(bytes).split('\n');
  } catch {
    const out: (string | null)[] = [];
    for (let start = 0; start <= bytes.length;) {
      const nl = bytes.indexOf(0x0a, start);
      const end = nl < 0 ? bytes.length : nl;
      try {
        out.push(utf8.decode(bytes.subarray(start, end)));
      } catch {
        out.push(null);
      }
      start = end + 1;
    }
    return out;
  }
}

function parseLine(line: string, field: string): { text?: string; error?: string } {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch (e) {
    return { error: `not valid JSON (${(e as Error).message}); each line must be one JSON object` };
  }
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    return { error: `expected a JSON object with a "${field}" field, got ${Array.isArray(record) ? 'an array' : JSON.stringify(record)?.slice(0, 40)}` };
  }
  const text = (record as Record<string, unknown>)[field];
  if (typeof text === 'string') return { text };
  if (text === undefined) {
    const keys = Object.keys(record).slice(0, 8).join(', ') || 'none';
    return { error: `no "${field}" field (its fields: ${keys}); name the text field with --text-field (data.text_field)` };
  }
  return { error: `the "${field}" field is ${text === null ? 'null' : `a ${typeof text}`}, not a string` };
}

function concatenate(docs: ArrayLike<number>[], tok: BatchTokenizer['info']): { tokens: TokenArray; lengths: Uint32Array; maxId: number } {
  const extra = tok.appendsEnd ? 0 : 1;
  const lengths = Uint32Array.from(docs, (d) => d.length + extra);
  const total = lengths.reduce((n, x) => n + x, 0);
  const tokens = newTokenArray(dtypeFor(tok.vocabSize), total);
  let at = 0;
  let maxId = -1;
  for (const doc of docs) {
    tokens.set(doc, at);
    at += doc.length;
    if (extra) tokens[at++] = tok.eot;
  }
  for (let i = 0; i < total; i++) if (tokens[i] > maxId) maxId = tokens[i];
  return { tokens, lengths, maxId };
}
