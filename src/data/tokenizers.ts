// Tokenizers: text ↔ token ids, each with an end-of-document id that the
// token stream puts after every document. What a tokenizer is (vocabulary,
// end id) is known without loading it; the BPE tables load on first use, so
// validating a config does not pay for them.

import { DataError, unknownName } from './errors.ts';

export const TOKENIZER_NAMES = ['byte', 'gpt2', 'llama'] as const;
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

export interface TokenizerInfo {
  vocabSize: number;
  /** End of document; appended after each document, never produced by encode(). */
  eot: number;
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

export function tokenizerInfo(name: string): TokenizerInfo & { name: TokenizerName } {
  if (!isTokenizerName(name)) throw unknownName('tokenizer', name, [...TOKENIZER_NAMES]);
  return { name, ...TOKENIZER_INFO[name] };
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
  return loaders[tokenizerInfo(name).name]();
}
