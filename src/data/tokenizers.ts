// Tokenizers: text ↔ token ids, each with an end-of-document id that the
// token stream puts after every document.

import { decode as gpt2Decode, encode as gpt2Encode } from 'gpt-tokenizer/encoding/r50k_base';
import { DataError, unknownName } from './errors.ts';

export const TOKENIZER_NAMES = ['byte', 'gpt2'] as const;
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

export interface Tokenizer {
  name: TokenizerName;
  vocabSize: number;
  /** End of document; appended after each document, never produced by encode(). */
  eot: number;
  encode(text: string): number[];
  decode(ids: number[]): string;
}

const utf8 = new TextDecoder();

/** UTF-8 bytes. NUL (0) never occurs in text, so it is free to mark the end of a document. */
function byteTokenizer(): Tokenizer {
  return {
    name: 'byte',
    vocabSize: 256,
    eot: 0,
    encode: (text) => {
      if (text.includes('\0')) throw new DataError('text contains NUL, which the byte tokenizer reserves for end-of-document');
      return Array.from(Buffer.from(text, 'utf8'));
    },
    decode: (ids) => utf8.decode(Uint8Array.from(ids)),
  };
}

/** GPT-2's BPE: r50k_base is the encoding GPT-2 shipped with (50,000 merges + 256 bytes + <|endoftext|>). */
function gpt2Tokenizer(): Tokenizer {
  return {
    name: 'gpt2',
    vocabSize: 50257,
    eot: 50256, // <|endoftext|>
    // The literal text "<|endoftext|>" in a document is plain text, not a document break.
    encode: (text) => gpt2Encode(text, { disallowedSpecial: new Set() }),
    decode: (ids) => gpt2Decode(ids),
  };
}

const tokenizers: Record<TokenizerName, () => Tokenizer> = {
  byte: byteTokenizer,
  gpt2: gpt2Tokenizer,
};

export function tokenizer(name: string): Tokenizer {
  if (!Object.hasOwn(tokenizers, name)) throw unknownName('tokenizer', name, [...TOKENIZER_NAMES]);
  return tokenizers[name as TokenizerName]();
}
