import { textSource } from '../src/data/sources.ts';
import { tokenizer } from '../src/data/tokenizers.ts';
const docs = [...textSource('brown').documents()];
for (const name of ['byte', 'gpt2']) {
  const tok = tokenizer(name);
  const t = performance.now();
  let n = 0;
  for (const d of docs) n += tok.encode(d).length;
  console.log(name, n, 'tokens', ((performance.now() - t) / 1000).toFixed(2), 's');
}
