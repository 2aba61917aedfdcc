// Tokenizers from a Hugging Face tokenizer.json, run by Hugging Face's own
// library (npm `tokenizers`, the Rust one the papers' code used), so its
// segmentation — ties between equal-score splits included — is the reference.
// Named ones (`t5`) are looked up in the local Hugging Face cache and in
// $NORMLAB_TOKENIZERS; nothing is ever downloaded.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { DataError } from './errors.ts';
import type { AnyTokenizerInfo, BatchTokenizer } from './tokenizers.ts';

export interface FileTokenizerInfo {
  file: { path: string; sha256: string; config?: string };
}

/** Tokenizers known by name: where a Hugging Face snapshot keeps them, and how to get one. */
export const NAMED_TOKENIZERS: Record<string, { repos: string[]; folders: string[]; download: string }> = {
  t5: {
    repos: ['models--google-t5--t5-base', 'models--t5-base'],
    folders: ['t5', 't5-base'],
    download: 'huggingface-cli download t5-base tokenizer.json tokenizer_config.json',
  },
};

/** Hugging Face's hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCache(env = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  return join(homedir(), '.cache', 'huggingface', 'hub');
}

/** Where a named tokenizer's tokenizer.json may be, in the order searched. */
export function namedCandidates(name: string, env = process.env): string[] {
  const named = NAMED_TOKENIZERS[name];
  const own = (env.NORMLAB_TOKENIZERS ?? '').split(':').filter((d) => d !== '');
  const snapshots = named.repos.flatMap((repo) => {
    const dir = join(hubCache(env), repo, 'snapshots');
    const found = existsSync(dir) ? readdirSync(dir).sort().map((s) => join(dir, s, 'tokenizer.json')) : [];
    return found.length > 0 ? found : [join(dir, '*', 'tokenizer.json')];
  });
  return [...own.flatMap((d) => named.folders.map((f) => join(d, f, 'tokenizer.json'))), ...snapshots];
}

/** The tokenizer.json a named tokenizer resolves to, or undefined. */
export function findNamed(name: string, env = process.env): string | undefined {
  return namedCandidates(name, env).find((f) => existsSync(f) && statSync(f).isFile());
}

/** What `normlab doctor` says of a named tokenizer: the file it resolves to and its sha256, why it does not load, or where to put it. */
export interface NamedTokenizerFinding {
  name: string;
  path?: string;
  sha256?: string;
  vocabSize?: number;
  /** Found but unusable: the error a run naming it would stop with. */
  problem?: string;
  /** Not found: the places searched, where to put the file, and the command that gets it. */
  looked?: string[];
  putAt?: string[];
  download?: string;
}

/** Where a named tokenizer's file may be put: $NORMLAB_TOKENIZERS/<name>/, or a snapshot folder in the Hugging Face cache. */
function placesFor(name: string, env: NodeJS.ProcessEnv): string[] {
  const named = NAMED_TOKENIZERS[name];
  const own = (env.NORMLAB_TOKENIZERS ?? '').split(':').find((d) => d !== '') ?? '$NORMLAB_TOKENIZERS';
  return [join(own, named.folders[0], 'tokenizer.json'), join(hubCache(env), named.repos[0], 'snapshots', '<any>', 'tokenizer.json')];
}

/** Every named tokenizer, looked up as a run would look it up (nothing is downloaded). */
export function namedTokenizers(env = process.env): NamedTokenizerFinding[] {
  return Object.entries(NAMED_TOKENIZERS).map(([name, named]) => {
    const path = findNamed(name, env);
    if (!path) return { name, looked: namedCandidates(name, env), putAt: placesFor(name, env), download: named.download };
    const sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
    try {
      return { name, path, sha256, vocabSize: openFile(path).getVocabSize(true) };
    } catch (e) {
      return { name, path, sha256, problem: (e as Error).message };
    }
  });
}

function missingNamed(name: string): DataError {
  const named = NAMED_TOKENIZERS[name];
  return new DataError(
    `tokenizer '${name}': no tokenizer.json found (looked in ${namedCandidates(name).join(', ')}); normlab never downloads. ` +
    `On a machine with network access run \`${named.download}\` (or save it with AutoTokenizer.from_pretrained('t5-base').save_pretrained(DIR)) ` +
    `and copy the file to $NORMLAB_TOKENIZERS/${named.folders[0]}/tokenizer.json or into the Hugging Face cache, or set data.tokenizer to its path. ` +
    `data.tokenizer: llama trains the same models on LLaMA's 32k vocabulary, whose perplexities are not comparable with the papers'.`);
}

/** `t5`, a tokenizer.json, or a folder holding one → the file's absolute path. */
export function tokenizerFile(spec: string): string {
  if (Object.hasOwn(NAMED_TOKENIZERS, spec) && !existsSync(spec)) {
    const found = findNamed(spec);
    if (!found) throw missingNamed(spec);
    return resolve(found);
  }
  const path = resolve(spec);
  if (!existsSync(path)) {
    throw new DataError(`tokenizer '${spec}': no such file or folder; expected byte, gpt2, llama, ${Object.keys(NAMED_TOKENIZERS).join(', ')}, or a Hugging Face tokenizer.json (or a folder holding one)`);
  }
  if (statSync(path).isDirectory()) {
    const inside = join(path, 'tokenizer.json');
    if (!existsSync(inside)) throw new DataError(`tokenizer '${spec}': the folder holds no tokenizer.json`);
    return inside;
  }
  return path;
}

const hashes = new Map<string, string>();

/**
 * What a run's identity holds for a tokenizer: `sha256:<hex>` of its file, so
 * moving the file changes nothing; a named one not found here stays its name
 * (a sweep can be planned on a machine without the file).
 */
export function tokenizerHashIdentity(spec: string): string {
  if (Object.hasOwn(NAMED_TOKENIZERS, spec) && !existsSync(spec) && !findNamed(spec)) return spec;
  const path = tokenizerFile(spec);
  const stat = statSync(path);
  const key = `${path}:${stat.size}:${stat.mtimeMs}`;
  if (!hashes.has(key)) hashes.set(key, createHash('sha256').update(readFileSync(path)).digest('hex'));
  return `sha256:${hashes.get(key)}`;
}

const infos = new Map<string, AnyTokenizerInfo>();

/** What a tokenizer.json holds (cached by path, size and modification time). */
export function fileTokenizerInfo(spec: string, eosToken?: string): AnyTokenizerInfo {
  const path = tokenizerFile(spec);
  const stat = statSync(path);
  const key = `${path}:${stat.size}:${stat.mtimeMs}:${eosToken ?? ''}`;
  let info = infos.get(key);
  if (!info) {
    info = readInfo(path, Object.hasOwn(NAMED_TOKENIZERS, spec) && !existsSync(spec) ? spec : path, eosToken);
    infos.set(key, info);
  }
  return info;
}

interface TokenizerJson {
  added_tokens?: { id: number; content: string }[];
  model?: { type?: string; vocab?: unknown };
  padding?: { pad_id?: number } | null;
  post_processor?: PostProcessor | null;
}

type PostProcessor = {
  type: string;
  single?: ({ SpecialToken: { id: string } } | { Sequence: unknown })[];
  special_tokens?: Record<string, { ids: number[] }>;
  sep?: [string, number];
  processors?: PostProcessor[];
};

function readInfo(path: string, name: string, eosToken?: string): AnyTokenizerInfo {
  const bytes = readFileSync(path);
  const json = parseJson(path, bytes) as TokenizerJson;
  const tok = openFile(path);
  const config = join(dirname(path), 'tokenizer_config.json');
  const tokConfig = existsSync(config) ? (parseJson(config, readFileSync(config)) as Record<string, unknown>) : {};
  const id = (token: string) => tok.tokenToId(token) ?? undefined;
  const eosName = eosToken ?? tokenName(tokConfig.eos_token) ?? ['</s>', '<|endoftext|>'].find((t) => id(t) !== undefined);
  const eot = eosName === undefined ? undefined : id(eosName);
  if (eot === undefined) {
    const why = eosName === undefined ? 'it has neither </s> nor <|endoftext|> and no tokenizer_config.json names an eos_token' : `it has no token ${JSON.stringify(eosName)}`;
    throw new DataError(`${path}: cannot tell the end-of-document token (${why}); name it with data.eos_token (--eos-token)`);
  }
  const padName = tokenName(tokConfig.pad_token);
  const pad = (padName === undefined ? undefined : id(padName)) ?? json.padding?.pad_id ?? id('<pad>') ?? eot;
  return {
    name, vocabSize: tok.getVocabSize(true), eot, pad, appendsEnd: appendsToken(json.post_processor, eot),
    file: { path, sha256: createHash('sha256').update(bytes).digest('hex'), ...(existsSync(config) && { config }) },
  };
}

/** tokenizer_config.json writes a token as a string or as {content: …}. */
function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return undefined;
}

/** Whether the post-processor ends a single sequence with token `id` (T5's TemplateProcessing appends </s>). */
function appendsToken(p: PostProcessor | null | undefined, id: number): boolean {
  if (!p) return false;
  if (p.type === 'Sequence') return (p.processors ?? []).some((q) => appendsToken(q, id));
  if (p.type === 'TemplateProcessing') {
    const last = p.single?.at(-1);
    if (!last || !('SpecialToken' in last)) return false;
    return p.special_tokens?.[last.SpecialToken.id]?.ids.at(-1) === id;
  }
  if (p.type === 'BertProcessing' || p.type === 'RobertaProcessing') return p.sep?.[1] === id;
  return false;
}

function parseJson(path: string, bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new DataError(`${path}: not valid JSON (${(e as Error).message}); expected a Hugging Face tokenizer.json: get the file again`);
  }
}

type HfTokenizer = import('tokenizers').Tokenizer;

function openFile(path: string): HfTokenizer {
  const { Tokenizer } = hfLibrary();
  try {
    return Tokenizer.fromFile(path);
  } catch (e) {
    const why = String((e as Error).message ?? e).split('\n')[0];
    throw new DataError(`${path}: Hugging Face tokenizers cannot load it (${why}); expected a tokenizer.json as tokenizer.save() or save_pretrained writes it`);
  }
}

// The native binding loads on first use: configs that never name a file never pay for it.
let library: typeof import('tokenizers') | undefined;
function hfLibrary(): typeof import('tokenizers') {
  library ??= createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');
  return library;
}

/** A tokenizer.json as the prepare workers use it: batches through the library's Rust threads. */
export async function loadFileTokenizer(info: AnyTokenizerInfo): Promise<BatchTokenizer> {
  const tok = openFile(info.file!.path);
  return {
    info,
    encodeBatch: async (texts) => {
      const encodings = await tok.encodeBatch(texts, { addSpecialTokens: true });
      return { ids: encodings.map((e) => e.getIds()), errors: [] };
    },
  };
}

/** Token text of `id`, for messages. */
export function tokenText(info: AnyTokenizerInfo, id: number): string | undefined {
  return info.file ? openFile(info.file.path).idToToken(id) ?? undefined : undefined;
}

/** A short label: `t5 (sha256 1a2b3c4d)`, or the file's folder and name. */
export function describeFile(info: AnyTokenizerInfo): string {
  const name = info.file && info.name === info.file.path ? join(basename(dirname(info.file.path)), basename(info.file.path)) : info.name;
  return info.file ? `${name} (sha256 ${info.file.sha256.slice(0, 12)})` : info.name;
}

/** Copies of a tokenizer.json (and the tokenizer_config.json beside it) for a checkpoint folder, so it loads without the original path. */
export function tokenizerFiles(info: AnyTokenizerInfo): Record<string, Uint8Array> {
  if (!info.file) return {};
  return {
    'tokenizer.json': readFileSync(info.file.path),
    ...(info.file.config && { 'tokenizer_config.json': readFileSync(info.file.config) }),
  };
}

/** Text in and out through a tokenizer.json, without its post-processor's additions (sampling continues a prompt). */
export function fileTextTokenizer(info: AnyTokenizerInfo) {
  const tok = openFile(info.file!.path);
  return {
    eot: info.eot,
    encode: async (text: string) => (text === '' ? [] : (await tok.encode(text, null, { addSpecialTokens: false })).getIds()),
    decode: (ids: ArrayLike<number>) => tok.decode(Array.from(ids), true),
  };
}
