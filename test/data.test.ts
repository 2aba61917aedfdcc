import assert from 'node:assert/strict';
import { test } from 'node:test';
import llamaReference from 'llama-tokenizer-js';
import { Batches, validationBatches } from '../src/data/batches.ts';
import type { TokenStore } from '../src/data/dataset.ts';
import { DataError } from '../src/data/errors.ts';
import { Permutation } from '../src/data/permutation.ts';
import { Rng } from '../src/data/rng.ts';
import { textSource } from '../src/data/sources.ts';
import { loadTokenizer, tokenizerInfo } from '../src/data/tokenizers.ts';

/** Tokens in memory, with documents starting at `starts` (default: one document). */
function memoryStore(tokens: ArrayLike<number>, starts: number[] = [0]): TokenStore {
  const bounds = [...starts, tokens.length];
  return {
    length: tokens.length,
    documents: starts.length,
    read: (start, count, out, offset) => {
      for (let i = 0; i < count; i++) out[offset + i] = tokens[start + i];
    },
    document: (d) => ({ start: bounds[d], end: bounds[d + 1] }),
  };
}

/** Tokens 0..n-1, so a window's first token tells which window it is. */
const ramp = (n: number) => Uint16Array.from({ length: n }, (_, i) => i);
const row = (batch: Int32Array, b: number, T: number) => [...batch.subarray(b * (T + 1), (b + 1) * (T + 1))];

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

test('unknown corpus and tokenizer names list the known ones', async () => {
  assert.throws(() => textSource('c4'), (e: Error) => e instanceof DataError && /'c4'.*known: brown/.test(e.message));
  assert.throws(() => textSource('constructor'), DataError);
  assert.throws(() => tokenizerInfo('t6'), (e: Error) => e instanceof DataError && /'t6': no such file or folder; expected byte, gpt2, llama, t5/.test(e.message));
  await assert.rejects(loadTokenizer('constructor'), DataError);
});

test('byte, gpt2 and llama round-trip decode(encode(x)) == x with ids below the vocab and no end id', async () => {
  const brownDoc = textSource('brown').documents()[Symbol.iterator]().next().value as string;
  const samples = ['', 'Hello, world!', ' leading space', 'naïve café — 東京 🙂\n\n\ttabs  and  spaces ', 'a literal <|endoftext|> and </s> in text', brownDoc];
  for (const name of ['byte', 'gpt2', 'llama']) {
    const tok = await loadTokenizer(name);
    for (const s of samples) {
      const ids = Array.from(tok.encode(s));
      assert.equal(tok.decode(ids), s, `${name}: ${s.slice(0, 30)}`);
      assert.ok(ids.every((id) => id >= 0 && id < tok.vocabSize && id !== tok.eot), `${name} ids in range, no eot`);
    }
  }
  const gpt2 = await loadTokenizer('gpt2');
  assert.deepEqual(gpt2.encode('Hello world'), [15496, 995]); // GPT-2's ids, not cl100k's
  assert.equal(gpt2.decode([50256]), '<|endoftext|>');
  const llama = await loadTokenizer('llama');
  assert.deepEqual(llama.encode('Hello world!'), [15043, 3186, 29991]); // LLaMA's ids, no BOS
  assert.deepEqual([tokenizerInfo('llama').vocabSize, tokenizerInfo('llama').eot], [32000, 2]);
  await assert.rejects(async () => (await loadTokenizer('byte')).encode('nul \0 inside'), DataError);
});

test('llama word-by-word encoding gives the same ids as llama-tokenizer-js on whole documents', async () => {
  const llama = await loadTokenizer('llama');
  const docs = [...textSource('brown').documents()].filter((_, i) => i % 50 === 0);
  const tricky = ['a  b   c', 'x\n\n  y\n', '  indented\n    code();\n', 'end with spaces   ', 'tab\tand\u00a0nbsp', 'émoji 🙂🙂 東京タワー', '\n\nleading newlines'];
  for (const text of [...docs, ...tricky]) {
    assert.deepEqual(Array.from(llama.encode(text)), llamaReference.encode(text, false, true), text.slice(0, 40));
  }
});

test('a Permutation is a bijection, fixed by its key and different for another', () => {
  for (const n of [1, 2, 3, 100, 1000, 4097]) {
    const p = new Permutation(n, 7);
    const order = Array.from({ length: n }, (_, i) => p.at(i));
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), `n = ${n}`);
    assert.deepEqual(Array.from({ length: n }, (_, i) => new Permutation(n, 7).at(i)), order);
    if (n >= 100) assert.notDeepEqual(Array.from({ length: n }, (_, i) => new Permutation(n, 8).at(i)), order);
  }
  const p = new Permutation(1000, 1);
  const moved = Array.from({ length: 1000 }, (_, i) => Math.abs(p.at(i) - i)).reduce((a, b) => a + b, 0) / 1000;
  assert.ok(moved > 250, `items move ~n/3 on average, got ${moved}`);
});

test('packed rows are T+1 consecutive tokens starting at a multiple of T, with no weights', () => {
  const T = 8;
  const batches = Batches.of('packed', memoryStore(ramp(1001)), 4, T, 1, { pad: 0 });
  const batch = batches.next();
  assert.equal(batch.length, 4 * (T + 1));
  assert.equal(batches.lastWeights(), undefined);
  for (let b = 0; b < 4; b++) {
    const r = row(batch, b, T);
    assert.equal(r[0] % T, 0);
    assert.deepEqual(r, Array.from({ length: T + 1 }, (_, i) => r[0] + i));
  }
});

test('the order is deterministic per seed and each epoch covers every window once', () => {
  const store = memoryStore(ramp(1001));
  const T = 10;
  const a = Batches.of('packed', store, 1, T, 5, { pad: 0 });
  const b = Batches.of('packed', store, 1, T, 5, { pad: 0 });
  assert.equal(a.rowsPerEpoch, 100);
  const epochs: number[][] = [[], []];
  for (let i = 0; i < 200; i++) {
    const x = a.next();
    assert.deepEqual(x, b.next());
    epochs[Math.floor(i / 100)].push(x[0] / T);
  }
  for (const starts of epochs) assert.deepEqual([...starts].sort((p, q) => p - q), Array.from({ length: 100 }, (_, i) => i));
  assert.notDeepEqual(epochs[0], epochs[1], 'each epoch its own order');
  const other = Batches.of('packed', store, 1, T, 6, { pad: 0 });
  assert.notDeepEqual(Array.from({ length: 10 }, () => other.next()[0]), epochs[0].slice(0, 10).map((w) => w * T));
  assert.deepEqual(a.position(), { epoch: 2, index: 0 });
});

/** 60 documents of 1 to 40 tokens, ids 1…, ending in the end id 0. */
function documents() {
  const tokens: number[] = [];
  const starts: number[] = [];
  for (let d = 0; d < 60; d++) {
    starts.push(tokens.length);
    const n = 1 + ((d * 7) % 40);
    for (let i = 0; i < n; i++) tokens.push(1 + ((d + i) % 200));
    tokens.push(0);
  }
  return { tokens, starts, store: memoryStore(tokens, starts) };
}

test('truncate rows are one document each: its first T+1 tokens, padded, padding weighted 0', () => {
  const { tokens, starts, store } = documents();
  const T = 16;
  const batches = Batches.of('truncate', store, 6, T, 3, { pad: 0 });
  assert.equal(batches.rowsPerEpoch, 60);
  const seen = new Set<number>();
  for (let i = 0; i < 10; i++) {
    const batch = batches.next();
    const weights = batches.lastWeights()!;
    for (let b = 0; b < 6; b++) {
      const r = row(batch, b, T);
      const d = r[0] - 1; // each document's first id names it
      seen.add(d);
      const length = (starts[d + 1] ?? tokens.length) - starts[d];
      const real = Math.min(length, T + 1);
      assert.deepEqual(r, [...tokens.slice(starts[d], starts[d] + real), ...new Array(T + 1 - real).fill(0)]);
      const w = [...weights.subarray(b * T, (b + 1) * T)];
      assert.deepEqual(w, [...new Array(real - 1).fill(1), ...new Array(T + 1 - real).fill(0)], `weights of document ${d} (${length} tokens)`);
    }
  }
  assert.equal(seen.size, 60, 'one epoch visits every document once');
});

test('a run resumed from position() sees exactly the batches of an uninterrupted one, in both modes', () => {
  for (const mode of ['packed', 'truncate'] as const) {
    const store = mode === 'packed' ? memoryStore(ramp(5000)) : documents().store;
    const uninterrupted = Batches.of(mode, store, 7, 16, 11, { pad: 0 });
    const interrupted = Batches.of(mode, store, 7, 16, 11, { pad: 0 });
    for (let i = 0; i < 45; i++) { uninterrupted.next(); interrupted.next(); } // past epoch 0 in both modes
    const saved = JSON.parse(JSON.stringify(interrupted.position()));
    assert.ok(saved.epoch >= 1, mode);
    const resumed = Batches.of(mode, store, 7, 16, 11, { pad: 0 });
    resumed.seek(saved);
    for (let i = 0; i < 60; i++) {
      assert.deepEqual(resumed.next(), uninterrupted.next(), `${mode} batch ${i}`);
      assert.deepEqual(resumed.lastWeights(), uninterrupted.lastWeights());
    }
  }
});

test('too-short splits and bad positions are errors that say what to change', () => {
  assert.throws(() => Batches.of('packed', memoryStore(ramp(8)), 1, 8, 0, { pad: 0 }), /train split has 8 tokens.*lower the batch size/);
  const batches = Batches.of('packed', memoryStore(ramp(100)), 1, 8, 0, { pad: 0 });
  assert.throws(() => batches.seek({ epoch: 0, index: batches.rowsPerEpoch }), DataError);
  assert.throws(() => batches.seek({ epoch: -1, index: 0 }), DataError);
  assert.throws(() => validationBatches('truncate', documents().store, 61, 8, 1, { pad: 0 }), /val split has 60 documents, fewer than the 61 of one batch/);
});

test('validation batches are the split\'s first windows or documents in order, fewer when it is short', () => {
  const T = 4;
  const packed = validationBatches('packed', memoryStore(ramp(101)), 3, T, 100, { pad: 0 }); // 25 windows
  assert.equal(packed.tokens.length, 8, 'floor(25 / 3) whole batches');
  assert.equal(packed.weights, undefined);
  assert.deepEqual(packed.tokens.flatMap((b) => [0, 1, 2].map((r) => b[r * (T + 1)])), Array.from({ length: 24 }, (_, i) => i * T));
  assert.deepEqual(validationBatches('packed', memoryStore(ramp(101)), 3, T, 2, { pad: 0 }).tokens, packed.tokens.slice(0, 2));

  const { tokens, starts, store } = documents();
  const truncated = validationBatches('truncate', store, 4, T, 2, { pad: 0 });
  assert.equal(truncated.tokens.length, 2);
  truncated.tokens.forEach((batch, i) => {
    for (let b = 0; b < 4; b++) assert.equal(batch[b * (T + 1)], tokens[starts[i * 4 + b]]);
  });
  const realTargets = truncated.weights!.reduce((n, w) => n + w.reduce((a, x) => a + x, 0), 0);
  const expected = starts.slice(0, 8).reduce((n, s, d) => n + Math.min((starts[d + 1] ?? tokens.length) - s, T + 1) - 1, 0);
  assert.equal(realTargets, expected, 'only real targets weigh');
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

test('eval_tokens scores the same leading documents whatever the batch size, token-weighted', () => {
  const { store } = documents();
  const T = 16;
  const scored = (batchSize: number) => {
    const v = validationBatches('truncate', store, batchSize, T, 1, { pad: 0 }, 100);
    const rows: number[][] = [];
    v.tokens.forEach((batch, i) => {
      for (let b = 0; b < batchSize; b++) {
        if (v.weights![i].subarray(b * T, (b + 1) * T).some((w) => w > 0)) rows.push([...batch.subarray(b * (T + 1), (b + 1) * (T + 1))]);
      }
    });
    return { rows, weight: v.weights!.reduce((n, w) => n + w.reduce((a, x) => a + x, 0), 0) };
  };
  const two = scored(2), five = scored(5);
  assert.deepEqual(five.rows, two.rows, 'the same documents');
  assert.equal(five.weight, two.weight);
  assert.ok(two.weight >= 100 && two.weight < 100 + T, `${two.weight} targets`);
  const packed = validationBatches('packed', memoryStore(ramp(1001)), 3, T, 1, { pad: 0 }, 5 * T);
  assert.equal(packed.tokens.length, 2);
  assert.deepEqual(packed.weights!.map((w) => w.reduce((a, x) => a + x, 0)), [3 * T, 2 * T], 'five windows: the sixth weighs 0');
});
