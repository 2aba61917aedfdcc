// One chunk of source → token ids, in a worker thread (or inline for small
// inputs): decode, parse JSON lines, pick the text field, tokenize, and append
// the end-of-document id. A bad line is an error naming file and line, or,
// with skipBadLines, counted and left out.

import { dtypeFor, type TokenArray } from './dataset.ts';
import { DataError } from './errors.ts';
import type { Chunk } from './read.ts';
import type { Tokenizer } from './tokenizers.ts';

export interface ChunkOptions {
  textField: string;
  skipBadLines: boolean;
}

export interface ChunkResult {
  /** Every document's ids then the end id, concatenated. */
  tokens: TokenArray;
  /** Each document's length in `tokens`. */
  lengths: Uint32Array;
  emptyDocuments: number;
  badLines: number;
  /** The first few bad lines' messages, for the summary. */
  badExamples: string[];
}

const EXAMPLES = 5;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function tokenizeChunk(chunk: Chunk, tok: Tokenizer, opts: ChunkOptions): ChunkResult {
  const docs: ArrayLike<number>[] = [];
  const result = { emptyDocuments: 0, badLines: 0, badExamples: [] as string[] };
  const bad = (message: string) => {
    if (!opts.skipBadLines) throw new DataError(`${message}; fix it, or pass --skip-bad-lines (data.skip_bad_lines) to skip such lines`);
    if (result.badLines++ < EXAMPLES) result.badExamples.push(message);
  };
  for (const { label, text, error } of texts(chunk, opts.textField)) {
    if (error !== undefined) bad(`${label}: ${error}`);
    else if (text === '') result.emptyDocuments++;
    else {
      try {
        docs.push(tok.encode(text!));
      } catch (e) {
        if (!(e instanceof DataError)) throw e;
        bad(`${label}: ${e.message}`);
      }
    }
  }
  return { ...concatenate(docs, tok), ...result };
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

function concatenate(docs: ArrayLike<number>[], tok: Tokenizer): { tokens: TokenArray; lengths: Uint32Array } {
  const lengths = Uint32Array.from(docs, (d) => d.length + 1);
  const total = lengths.reduce((n, x) => n + x, 0);
  const tokens = dtypeFor(tok.vocabSize) === 'uint16' ? new Uint16Array(total) : new Uint32Array(total);
  let at = 0;
  for (const doc of docs) {
    tokens.set(doc, at);
    tokens[at + doc.length] = tok.eot;
    at += doc.length + 1;
  }
  return { tokens, lengths };
}
