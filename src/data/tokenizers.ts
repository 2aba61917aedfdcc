// Tokenizers: text ↔ token ids, each with an end-of-document id that the
// token stream puts after every document. What a built-in tokenizer is
// (vocabulary, end id) is known without loading it; the BPE tables load on
// first use, so validating a config does not pay for them. Any other
// tokenizer is a Hugging Face tokenizer.json (hf.ts).

import { DataError } from './errors.ts';
import { type FileTokenizerInfo, fileTokenizerInfo, loadFileTokenizer } from './hf.ts';

export const TOKENIZER_NAMES = ['byte', 'gpt2', 'llama'] as const;
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

export interface TokenizerInfo {
  vocabSize: number;
  /** End of document; appended after each document, never produced by encode(). */
  eot: number;
}

/** What any tokenizer is, built-in or from a file, known before tokenizing anything. */
export interface AnyTokenizerInfo extends TokenizerInfo {
  /** A built-in name, `t5`, or the tokenizer.json's absolute path. */
  name: string;
  /** Truncated rows' padding (the end id for built-ins). */
  pad: number;
  /** Its post-processor already ends every document with `eot` (T5's appends </s>): none is added. */
  appendsEnd: boolean;
  /** For a tokenizer.json: its path, sha256 (its identity) and the tokenizer_config.json beside it. */
  file?: FileTokenizerInfo['file'];
}

/** Batch encoding for the prepare workers: each document's ids, with what the tokenizer's post-processor adds. */
export interface BatchTokenizer {
  info: AnyTokenizerInfo;
  /** null for a document the tokenizer refuses (a DataError message in `errors[i]`). */
  encodeBatch(texts: string[]): Promise<{ ids: (ArrayLike<number> | null)[]; errors: (string | undefined)[] }>;
}

export const TOKENIZER_INFO: Record<TokenizerName, TokenizerInfo> = {
  byte: { vocabSize: 256, eot: 0 }, // NUL never occurs in text
  gpt2: { vocabSize: 50257, eot: 50256 }, // <|endoftext|>
  llama: { vocabSize: 32000, eot: 2 }, // </s>; the papers' 32k vocabulary
};

export interface Tokenizer extends TokenizerInfo {
  name: TokenizerName;
  encode(text: string): ArrayLike<number>;
  decode(ids: ArrayLike<number>): string;
}

function isTokenizerName(name: string): name is TokenizerName {
  return (TOKENIZER_NAMES as readonly string[]).includes(name);
}

export function isBuiltinTokenizer(spec: string): spec is TokenizerName {
  return isTokenizerName(spec);
}

/**
 * A built-in name, `t5` (looked up in the local Hugging Face cache), or a
 * tokenizer.json path or a folder holding one (relative: to the working
 * folder; configs resolve theirs against their own folder first).
 */
export function tokenizerInfo(spec: string, eosToken?: string): AnyTokenizerInfo {
  if (!isTokenizerName(spec)) return fileTokenizerInfo(spec, eosToken);
  return { name: spec, ...TOKENIZER_INFO[spec], pad: TOKENIZER_INFO[spec].eot, appendsEnd: false };
}

const utf8 = new TextDecoder();

function byteTokenizer(): Tokenizer {
  return {
    name: 'byte',
    ...TOKENIZER_INFO.byte,
    encode: (text) => {
      if (text.includes('\0')) throw new DataError('text contains NUL, which the byte tokenizer reserves for end-of-document');
      return Buffer.from(text, 'utf8');
    },
    decode: (ids) => utf8.decode(Uint8Array.from(ids)),
  };
}

/** GPT-2's BPE: r50k_base is the encoding GPT-2 shipped with (50,000 merges + 256 bytes + <|endoftext|>). */
async function gpt2Tokenizer(): Promise<Tokenizer> {
  const { encode, decode } = await import('gpt-tokenizer/encoding/r50k_base');
  // The literal text "<|endoftext|>" in a document is plain text, not a document break.
  const plain = { disallowedSpecial: new Set<string>() };
  return {
    name: 'gpt2',
    ...TOKENIZER_INFO.gpt2,
    encode: (text) => encode(text, plain),
    decode: (ids) => decode(Array.from(ids)),
  };
}

async function llamaTokenizer(): Promise<Tokenizer> {
  const { llamaEncoder } = await import('./llama.ts');
  return { name: 'llama', ...TOKENIZER_INFO.llama, ...(await llamaEncoder()) };
}

const loaders: Record<TokenizerName, () => Tokenizer | Promise<Tokenizer>> = {
  byte: byteTokenizer,
  gpt2: gpt2Tokenizer,
  llama: llamaTokenizer,
};

export async function loadTokenizer(name: string): Promise<Tokenizer> {
  if (!isTokenizerName(name)) throw new DataError(`'${name}' is not a built-in tokenizer; known: ${TOKENIZER_NAMES.join(', ')}`);
  return loaders[name]();
}

/** Any tokenizer as the prepare workers use it. */
export async function loadBatchTokenizer(info: AnyTokenizerInfo): Promise<BatchTokenizer> {
  if (info.file) return loadFileTokenizer(info);
  const tok = await loadTokenizer(info.name);
  return {
    info,
    encodeBatch: async (texts) => {
      const errors: (string | undefined)[] = [];
      const ids = texts.map((text, i) => {
        try {
          return tok.encode(text);
        } catch (e) {
          if (!(e instanceof DataError)) throw e;
          errors[i] = e.message;
          return null;
        }
      });
      return { ids, errors };
    },
  };
}
