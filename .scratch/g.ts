import { encode, decode, vocabularySize } from 'gpt-tokenizer/encoding/r50k_base';
console.log(vocabularySize, encode('Hello world'), encode('<|endoftext|>', { allowedSpecial: new Set(['<|endoftext|>']) }));
try { console.log(encode('a <|endoftext|> b')); } catch (e) { console.log('throws', (e as Error).message); }
console.log(encode('a <|endoftext|> b', { disallowedSpecial: new Set() }));
console.log(JSON.stringify(decode([50256])), decode(encode('héllo 🙂 wörld\n\n  x')));
