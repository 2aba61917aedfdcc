import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PackedBatches, validationBatches } from '../src/data/batches.ts';
import { DataError } from '../src/data/errors.ts';
import { Rng } from '../src/data/rng.ts';
import { type TextSource, textSource } from '../src/data/sources.ts';
import { tokenizer } from '../src/data/tokenizers.ts';
import { checkVocab, prepareTokens, valDocuments } from '../src/data/tokens.ts';

const tempDir = () => mkdtempSync(join(tmpdir(), 'normlab-data-'));

/** 40 short documents that name themselves, so a split can be read back. */
const tinySource: TextSource = {
  id: 'tiny-test',
  describe: () => 'forty numbered test documents',
  documents: () => Array.from({ length: 40 }, (_, i) => `document ${i}: the quick brown fox, ${'é'.repeat(i % 3)}\nline two.`),
};

const byteDocuments = (ids: Uint16Array | Uint32Array) =>
  tokenizer('byte').decode([...ids]).split('\0').slice(0, -1);

test('brown has 500 documents and no POS-tag artefacts', () => {
  const docs = [...textSource('brown').documents()];
  assert.equal(docs.length, 500);
  const words = docs.reduce((n, d) => n + d.split(/\s+/).length, 0);
  assert.ok(words > 900_000 && words < 1_300_000, `${words} words`);
  for (const d of docs) {
    assert.doesNotMatch(d, /\S\/(at|nn|nns|np|in|jj|vbd|vbn|cc|rb|pps)(-tl|-hl)?(?=\s|$)/);
    assert.doesNotMatch(d, /\/[a-z$*+]+-(tl|hl)\b/);
    assert.doesNotMatch(d, /``|''/);
  }
  assert.match(docs[0], /^The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "no evidence" that any irregularities took place\.\n/);
});

test('unknown corpus and tokenizer names list the known ones', () => {
  assert.throws(() => textSource('c4'), (e: Error) => e instanceof DataError && /'c4'.*known: brown/.test(e.message));
  assert.throws(() => textSource('constructor'), DataError);
  assert.throws(() => tokenizer('llama'), (e: Error) => e instanceof DataError && /'llama'.*known: byte, gpt2/.test(e.message));
});

test('byte and gpt2 round-trip decode(encode(x)) == x', () => {
  const brownDoc = textSource('brown').documents()[Symbol.iterator]().next().value as string;
  const samples = ['', 'Hello, world!', 'naïve café — 東京 🙂\n\n\ttabs  and  spaces ', 'a literal <|endoftext|> in text', brownDoc];
  for (const name of ['byte', 'gpt2']) {
    const tok = tokenizer(name);
    for (const s of samples) {
      const ids = tok.encode(s);
      assert.equal(tok.decode(ids), s, `${name}: ${s.slice(0, 30)}`);
      assert.ok(ids.every((id) => id >= 0 && id < tok.vocabSize && id !== tok.eot), `${name} ids in range, no eot`);
    }
  }
  assert.deepEqual(tokenizer('gpt2').encode('Hello world'), [15496, 995]); // GPT-2's ids, not cl100k's
  assert.equal(tokenizer('gpt2').vocabSize, 50257);
  assert.equal(tokenizer('gpt2').decode([50256]), '<|endoftext|>');
  assert.throws(() => tokenizer('byte').encode('nul \0 inside'), DataError);
});

test('the split is deterministic for a seed, different for another, and disjoint by document', () => {
  const a = valDocuments(500, 0.1, 7);
  assert.deepEqual([...valDocuments(500, 0.1, 7)], [...a]);
  assert.notDeepEqual([...valDocuments(500, 0.1, 8)], [...a]);
  assert.ok(a.size > 25 && a.size < 80, `${a.size} val documents of 500 at 10%`);
  assert.equal(valDocuments(3, 0.001, 1).size, 1, 'at least one val document');
  assert.equal(valDocuments(3, 0.999, 1).size, 2, 'at least one train document');

  const { train, val, meta } = prepareTokens({ corpus: tinySource, tokenizer: 'byte', valFraction: 0.25, seed: 3, cacheDir: tempDir() });
  const all = [...tinySource.documents()];
  const trainDocs = byteDocuments(train);
  const valDocs = byteDocuments(val);
  assert.deepEqual(valDocs, meta.valDocuments.map((i) => all[i]));
  assert.deepEqual([...trainDocs, ...valDocs].sort(), [...all].sort(), 'every document in exactly one split');
  assert.deepEqual(meta.documents, { train: trainDocs.length, val: valDocs.length });
  assert.deepEqual(meta.tokens, { train: train.length, val: val.length });
});

test('gpt2 tokens are uint16 and the cache is reused: second call faster, same bytes', (t) => {
  const cacheDir = tempDir();
  const opts = { corpus: 'brown', tokenizer: 'gpt2', valFraction: 0.05, seed: 0, cacheDir };
  let start = performance.now();
  const first = prepareTokens(opts);
  const coldMs = performance.now() - start;
  const [key] = readdirSync(cacheDir);
  const metaMtime = statSync(join(cacheDir, key, 'meta.json')).mtimeMs;
  start = performance.now();
  const second = prepareTokens(opts);
  const warmMs = performance.now() - start;
  t.diagnostic(`brown/gpt2: ${first.meta.tokens.train + first.meta.tokens.val} tokens, cold ${coldMs.toFixed(0)} ms, cached ${warmMs.toFixed(0)} ms`);

  assert.ok(first.train instanceof Uint16Array);
  assert.equal(first.meta.vocabSize, 50257);
  assert.equal(first.meta.documents.train + first.meta.documents.val, 500);
  assert.ok(warmMs < coldMs, `cached ${warmMs} ms vs cold ${coldMs} ms`);
  assert.deepEqual(readdirSync(cacheDir), [key], 'nothing new written');
  assert.equal(statSync(join(cacheDir, key, 'meta.json')).mtimeMs, metaMtime);
  assert.deepEqual(second.train, first.train);
  assert.deepEqual(second.val, first.val);
  assert.deepEqual(second.meta, first.meta);
  assert.ok(first.train.every((id) => id < 50257));
});

test('a leftover partial cache folder is not taken for a cache', () => {
  const complete = tempDir();
  const opts = { corpus: tinySource, tokenizer: 'byte', valFraction: 0.25, seed: 3 };
  const expected = prepareTokens({ ...opts, cacheDir: complete });
  const [key] = readdirSync(complete);
  // What a prepare killed mid-write leaves: a partial folder with a short train.bin.
  const killed = tempDir();
  cpSync(join(complete, key), join(killed, `${key}.partial-1-1`), { recursive: true });
  truncateSync(join(killed, `${key}.partial-1-1`, 'train.bin'), 10);
  const got = prepareTokens({ ...opts, cacheDir: killed });
  assert.deepEqual(got.train, expected.train);
  assert.deepEqual(readFileSync(join(killed, key, 'train.bin')), readFileSync(join(complete, key, 'train.bin')));
});

test('a complete cache whose .bin does not match meta.json is an error naming the folder', () => {
  const cacheDir = tempDir();
  const opts = { corpus: tinySource, tokenizer: 'byte', valFraction: 0.25, seed: 3, cacheDir };
  prepareTokens(opts);
  const [key] = readdirSync(cacheDir);
  truncateSync(join(cacheDir, key, 'val.bin'), 3);
  assert.throws(() => prepareTokens(opts), (e: Error) => e instanceof DataError && e.message.includes(join(cacheDir, key)));
});

test('checkVocab names the tokenizer and the model vocab', () => {
  const { meta } = prepareTokens({ corpus: tinySource, tokenizer: 'gpt2', valFraction: 0.25, seed: 3, cacheDir: tempDir() });
  assert.throws(() => checkVocab(meta, 32000), { message: /^tokenizer gpt2 has 50257 tokens but model.vocab_size is 32000/ });
  assert.doesNotThrow(() => checkVocab(meta, 50304));
});

/** Tokens 0..n-1, so a window's first token tells which window it is. */
const ramp = (n: number) => Uint16Array.from({ length: n }, (_, i) => i);

test('PackedBatches rows are T+1 consecutive tokens starting at a multiple of T', () => {
  const T = 8;
  const batch = new PackedBatches(ramp(1001), 4, T, 1).next();
  assert.equal(batch.length, 4 * (T + 1));
  for (let b = 0; b < 4; b++) {
    const row = batch.subarray(b * (T + 1), (b + 1) * (T + 1));
    assert.equal(row[0] % T, 0);
    assert.deepEqual([...row], Array.from({ length: T + 1 }, (_, i) => row[0] + i));
  }
});

test('PackedBatches order is deterministic per seed and each epoch covers every window once', () => {
  const tokens = ramp(1001);
  const T = 10;
  const a = new PackedBatches(tokens, 1, T, 5);
  const b = new PackedBatches(tokens, 1, T, 5);
  const other = new PackedBatches(tokens, 1, T, 6);
  assert.equal(a.windows, 100);
  const epochs: number[][] = [[], []];
  for (let i = 0; i < 200; i++) {
    const x = a.next();
    assert.deepEqual(x, b.next());
    epochs[Math.floor(i / 100)].push(x[0] / T);
  }
  for (const starts of epochs) assert.deepEqual([...starts].sort((p, q) => p - q), Array.from({ length: 100 }, (_, i) => i));
  assert.notDeepEqual(epochs[0], epochs[1], 'each epoch its own order');
  assert.notDeepEqual(new PackedBatches(tokens, 1, T, 5).next(), other.next());
  assert.deepEqual(a.position(), { epoch: 2, index: 0 });
});

test('a run resumed from position() sees exactly the batches of an uninterrupted one', () => {
  const tokens = ramp(5000);
  const uninterrupted = new PackedBatches(tokens, 7, 16, 11);
  const interrupted = new PackedBatches(tokens, 7, 16, 11);
  for (let i = 0; i < 45; i++) { uninterrupted.next(); interrupted.next(); } // 315 windows: past epoch 0's 312
  const saved = JSON.parse(JSON.stringify(interrupted.position()));
  assert.equal(saved.epoch, 1);
  const resumed = PackedBatches.restore(tokens, 7, 16, 11, saved);
  const sought = new PackedBatches(tokens, 7, 16, 11);
  sought.seek(saved);
  for (let i = 0; i < 60; i++) {
    const expected = uninterrupted.next();
    assert.deepEqual(resumed.next(), expected);
    assert.deepEqual(sought.next(), expected);
  }
});

test('PackedBatches ids stay below the vocab; too-short splits and bad positions are errors', () => {
  const { train, meta } = prepareTokens({ corpus: tinySource, tokenizer: 'byte', valFraction: 0.25, seed: 3, cacheDir: tempDir() });
  const batches = new PackedBatches(train, 4, 32, 0);
  for (let i = 0; i < 50; i++) assert.ok(batches.next().every((id) => id >= 0 && id < meta.vocabSize));
  assert.throws(() => new PackedBatches(ramp(8), 1, 8, 0), /train split has 8 tokens/);
  assert.throws(() => batches.seek({ epoch: 0, index: batches.windows }), DataError);
});

test('validationBatches are the first consecutive windows, fewer when the split is short', () => {
  const T = 4;
  const val = ramp(101); // 25 windows
  const batches = validationBatches(val, 3, T, 100);
  assert.equal(batches.length, 8, 'floor(25 / 3) whole batches');
  const firsts = batches.flatMap((b) => [0, 1, 2].map((r) => b[r * (T + 1)]));
  assert.deepEqual(firsts, Array.from({ length: 24 }, (_, i) => i * T));
  assert.deepEqual(validationBatches(val, 3, T, 2), batches.slice(0, 2));
  assert.throws(() => validationBatches(ramp(12), 3, T, 1), /val split has 12 tokens/);
});

test('Rng is deterministic, resumable from state(), and normal() is standard', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 1000 }, () => a.nextUint32());
  assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.nextUint32()));
  assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => new Rng(43).nextUint32()));

  a.normal(); // leaves a spare normal in the state
  const copy = Rng.fromState(JSON.parse(JSON.stringify(a.state())));
  for (let i = 0; i < 5; i++) assert.equal(copy.normal(), a.normal());
  assert.equal(copy.nextFloat(), a.nextFloat());

  const n = 200_000;
  const rng = new Rng(1);
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const z = rng.normal();
    sum += z;
    sumSq += z * z;
  }
  const mean = sum / n;
  assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(Math.sqrt(sumSq / n - mean * mean) - 1) < 0.01, 'std ≈ 1');
  const u = Array.from({ length: 10000 }, () => rng.nextFloat());
  assert.ok(u.every((x) => x >= 0 && x < 1));
  assert.ok(Math.abs(u.reduce((s, x) => s + x, 0) / u.length - 0.5) < 0.02);
});
