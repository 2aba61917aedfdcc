// Hugging Face tokenizer.json through the `tokenizers` library: SentencePiece
// agreement, the papers' T5 rows, GPT-2 rebuilt as a file, and the errors.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import bpeRanks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { configHash } from '../src/config/hash.ts';
import { loadRunConfig } from '../src/config/load.ts';
import { validationBatches } from '../src/data/batches.ts';
import { openDataset, rowEnds } from '../src/data/dataset.ts';
import { findNamed } from '../src/data/hf.ts';
import { prepareDataset } from '../src/data/prepare.ts';
import { hash32 } from '../src/data/rng.ts';
import { tokenizerInfo } from '../src/data/tokenizers.ts';
import { ROOT, runCli, tempDir } from './helpers/cli.ts';

const { Tokenizer } = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'unigram');
const TOKENIZER = join(FIXTURE, 'tokenizer.json');
const DOCS = join(FIXTURE, 'docs.jsonl');
const texts = readFileSync(DOCS, 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);

/** Each text's ids as the library gives them without its post-processor. */
async function rawIds(file: string, docs: string[]): Promise<number[][]> {
  const tok = Tokenizer.fromFile(file);
  return (await tok.encodeBatch(docs, { addSpecialTokens: false })).map((e) => e.getIds());
}

test('the Unigram fixture agrees with SentencePiece except on equal-score ties, which are counted', async () => {
  const sentencepiece = JSON.parse(readFileSync(join(FIXTURE, 'sentencepiece-ids.json'), 'utf8')) as number[][];
  const scores = (JSON.parse(readFileSync(TOKENIZER, 'utf8')).model.vocab as [string, number][]).map(([, s]) => s);
  const score = (ids: number[]) => ids.reduce((sum, id) => sum + scores[id], 0);
  const hf = await rawIds(TOKENIZER, texts);
  let ties = 0;
  hf.forEach((ids, i) => {
    if (ids.join() === sentencepiece[i].join()) return;
    // A tie: the same number of pieces with the same total score, split elsewhere.
    assert.equal(ids.length, sentencepiece[i].length, `document ${i}: not a tie (piece counts differ)`);
    assert.ok(Math.abs(score(ids) - score(sentencepiece[i])) < 1e-4, `document ${i}: not a tie (scores differ)`);
    ties++;
  });
  assert.ok(ties <= texts.length / 20, `${ties} ties of ${texts.length}`);
  const info = tokenizerInfo(TOKENIZER);
  assert.deepEqual([info.vocabSize, info.eot, info.pad, info.appendsEnd], [2000, 1, 0, true]);
});

test('T5-style truncate rows are the first seq_len pieces, </s>, then pads; the dataset records sha256 and largest id', async () => {
  const dir = tempDir();
  const T = 12;
  const hand = 'the the the';
  writeFileSync(join(dir, 'docs.jsonl'), readFileSync(DOCS, 'utf8') + JSON.stringify({ text: hand }) + '\n');
  const r = await prepareDataset({ sources: [join(dir, 'docs.jsonl')], tokenizer: TOKENIZER, out: join(dir, 'ds'), valFraction: 0.5, workers: 0 });
  const { meta, val } = openDataset(r.dir);
  assert.equal(meta.tokenizerSha256, tokenizerInfo(TOKENIZER).file!.sha256);
  assert.deepEqual([meta.eot, meta.pad, meta.appendsEnd, meta.dtype], [1, 0, true, 'uint16']);
  const all = [...texts, hand];
  const raw = await rawIds(TOKENIZER, all);
  assert.equal(meta.maxId, Math.max(...raw.flat(), 1));
  const valDocs = all.map((_, i) => i).filter((i) => hash32(0, i) / 2 ** 32 < 0.5);
  const rows = validationBatches('truncate', val, 1, T, valDocs.length, rowEnds(meta));
  valDocs.forEach((d, k) => {
    const pieces = raw[d].slice(0, T);
    const expected = [...pieces, 1, ...Array(T - pieces.length).fill(0)];
    assert.deepEqual([...rows.tokens[k]], expected, `document ${d}`);
    assert.equal(rows.weights![k].reduce((a, b) => a + b, 0), pieces.length, 'pieces.length targets: the pieces after the first, then </s>');
  });
  // Written out by hand: "the the the" is ▁the ×3; rows of seq_len 2 and 5.
  const the = Tokenizer.fromFile(TOKENIZER).tokenToId('▁the')!;
  const handRow = (t: number) => {
    const k = valDocs.indexOf(all.length - 1);
    if (k >= 0) return [...validationBatches('truncate', val, 1, t, k + 1, rowEnds(meta)).tokens[k]];
    const { train } = openDataset(r.dir);
    const d = train.documents - 1;
    const { start, end } = train.document(d);
    const out = new Int32Array(end - start);
    train.read(start, end - start, out, 0);
    return [...out];
  };
  if (valDocs.includes(all.length - 1)) {
    assert.deepEqual(handRow(2), [the, the, 1]);
    assert.deepEqual(handRow(5), [the, the, the, 1, 0, 0]);
  } else assert.deepEqual(handRow(0), [the, the, the, 1], 'stored as the pieces then </s>, once');
});

/** GPT-2's byte-level BPE as a tokenizer.json, its merges rebuilt from gpt-tokenizer's r50k ranks. */
function gpt2TokenizerJson(): object {
  const bytesOf = (t: string | number[]) => (typeof t === 'string' ? Buffer.from(t, 'utf8') : Buffer.from(t));
  const tokens = bpeRanks.map(bytesOf);
  const rank = new Map(tokens.map((b, r) => [b.toString('latin1'), r]));
  const unicode = byteToUnicode();
  const show = (b: Buffer) => [...b].map((x) => unicode[x]).join('');
  const merges: string[] = [];
  tokens.forEach((token, r) => {
    if (token.length < 2) return;
    // BPE on the token's bytes with the merges ranked before it leaves exactly two parts: its merge.
    let parts = [...token].map((x) => Buffer.from([x]));
    for (;;) {
      let best = -1, bestRank = r;
      for (let i = 0; i + 1 < parts.length; i++) {
        const k = rank.get(Buffer.concat([parts[i], parts[i + 1]]).toString('latin1'));
        if (k !== undefined && k < bestRank) [best, bestRank] = [i, k];
      }
      if (best < 0) break;
      parts = [...parts.slice(0, best), Buffer.concat([parts[best], parts[best + 1]]), ...parts.slice(best + 2)];
    }
    assert.equal(parts.length, 2, `token ${r}`);
    merges[r] = `${show(parts[0])} ${show(parts[1])}`;
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null, pre_tokenizer: byteLevel, post_processor: null, decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false,
      vocab: Object.fromEntries([...tokens.map((b, r) => [show(b), r]), ['<|endoftext|>', 50256]]),
      merges: merges.filter((m) => m !== undefined),
    },
  };
}

/** GPT-2's printable stand-ins for bytes (bytes_to_unicode). */
function byteToUnicode(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let n = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + n++));
}

test('a byte-level BPE tokenizer.json rebuilt from r50k gives the built-in gpt2 dataset, byte for byte', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(gpt2TokenizerJson()));
  const source = join(dir, 'c4.jsonl');
  const weird = ['  two leading spaces', "it's 1,234.5 — naïve café 東京 🙂\n\n\ttabbed", 'trailing spaces   ', 'x'.repeat(300)];
  writeFileSync(source, [...texts.slice(0, 60), ...weird].map((text, i) => JSON.stringify({ text, url: `https://example.com/${i}` })).join('\n') + '\n');
  const builtin = await prepareDataset({ sources: [source], tokenizer: 'gpt2', out: join(dir, 'builtin'), workers: 0 });
  const file = await prepareDataset({ sources: [source], tokenizer: join(dir, 'tokenizer.json'), out: join(dir, 'file'), workers: 0 });
  assert.equal(file.meta.appendsEnd, false, 'no post-processor: normlab appends <|endoftext|>');
  for (const split of ['train', 'val'] as const) {
    assert.deepEqual(file.meta[split].shards.map((s) => s.sha256), builtin.meta[split].shards.map((s) => s.sha256), split);
  }
});

test('the run identity uses the tokenizer file\'s sha256: moving it changes nothing, editing it does', () => {
  const dir = tempDir();
  for (const sub of ['a', 'b', 'c']) mkdirSync(join(dir, sub));
  cpSync(TOKENIZER, join(dir, 'a', 'tokenizer.json'));
  cpSync(TOKENIZER, join(dir, 'b', 'moved.json'));
  const edited = readFileSync(TOKENIZER, 'utf8').replace('"unk_id": 2', '"unk_id":2');
  writeFileSync(join(dir, 'c', 'tokenizer.json'), edited);
  const config = (sub: string, tokenizer: string) => {
    const file = join(dir, sub, 'run.yaml');
    writeFileSync(file, stringify({ name: 'x', model: { preset: 'nano', vocab_size: 2048 }, data: { tokenizer } }));
    return loadRunConfig(file);
  };
  const a = config('a', 'tokenizer.json'); // relative: to the config's folder
  assert.equal(a.data.tokenizer, join(dir, 'a', 'tokenizer.json'));
  assert.equal(configHash(config('b', 'moved.json')), configHash(a));
  assert.notEqual(configHash(config('c', '.')), configHash(a), 'a folder holding tokenizer.json; other content');
});

test('t5 is found in the Hugging Face cache or $NORMLAB_TOKENIZERS, never downloaded; missing, it is exit 2 with nothing written', () => {
  const dir = tempDir();
  const empty = { HF_HUB_CACHE: join(dir, 'hub'), NORMLAB_TOKENIZERS: '' };
  assert.equal(findNamed('t5', empty), undefined);
  const snapshot = join(dir, 'hub', 'models--google-t5--t5-base', 'snapshots', '0123abc');
  mkdirSync(snapshot, { recursive: true });
  cpSync(TOKENIZER, join(snapshot, 'tokenizer.json'));
  assert.equal(findNamed('t5', empty), join(snapshot, 'tokenizer.json'));
  mkdirSync(join(dir, 'own', 't5'), { recursive: true });
  cpSync(TOKENIZER, join(dir, 'own', 't5', 'tokenizer.json'));
  assert.equal(findNamed('t5', { HF_HOME: join(dir, 'nowhere'), NORMLAB_TOKENIZERS: join(dir, 'own') }), join(dir, 'own', 't5', 'tokenizer.json'));

  const config = join(dir, 'run.yaml');
  const runs = join(dir, 'runs');
  writeFileSync(config, stringify({ name: 'x', model: { preset: 'nano', n_layers: 2 }, train: { steps: 2, batch_size: 2, seq_len: 16 }, data: { tokenizer: 't5' }, output: { runs_dir: runs } }));
  const r = runCli(['train', config], ROOT, { HF_HUB_CACHE: join(dir, 'nohub'), NORMLAB_TOKENIZERS: '' });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /tokenizer 't5': no tokenizer\.json found \(looked in .*nohub.*\); normlab never downloads.*huggingface-cli download t5-base tokenizer\.json.*tokenizer: llama/s);
  assert.equal(existsSync(runs), false, 'nothing written');
});

test('a corrupt tokenizer.json, ids beyond vocab_size and a dataset of another tokenizer file: exit 2, nothing written', async () => {
  const dir = tempDir();
  const runs = join(dir, 'runs');
  const run = (data: object, model: object = {}) => {
    const config = join(dir, 'run.yaml');
    writeFileSync(config, stringify({
      name: 'x', model: { preset: 'nano', n_layers: 2, vocab_size: 2048, ...model }, train: { steps: 2, batch_size: 2, seq_len: 16 },
      data: { batching: 'truncate', ...data }, output: { runs_dir: runs },
    }));
    return runCli(['train', config]);
  };
  writeFileSync(join(dir, 'cut.json'), readFileSync(TOKENIZER, 'utf8').slice(0, 500));
  writeFileSync(join(dir, 'not-a-tokenizer.json'), '{"model": {"type": "Nothing"}}');
  let r = run({ tokenizer: join(dir, 'cut.json') });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cut\.json: not valid JSON .*expected a Hugging Face tokenizer\.json/);
  r = run({ tokenizer: join(dir, 'not-a-tokenizer.json') });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not-a-tokenizer\.json: Hugging Face tokenizers cannot load it/);
  assert.equal(existsSync(runs), false);

  const prepared = await prepareDataset({ sources: [DOCS], tokenizer: TOKENIZER, out: join(dir, 'ds'), workers: 0 });
  r = run({ source: prepared.dir, tokenizer: TOKENIZER }, { vocab_size: 1000 });
  assert.equal(r.code, 2);
  const token = Tokenizer.fromFile(TOKENIZER).idToToken(prepared.meta.maxId)!;
  const escaped = JSON.stringify(token).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assert.match(r.stderr, new RegExp(`holds id ${prepared.meta.maxId} \\(token ${escaped}\\), not below model\\.vocab_size 1000; set model\\.vocab_size to at least ${prepared.meta.maxId + 1}`));
  writeFileSync(join(dir, 'other.json'), readFileSync(TOKENIZER, 'utf8').replace('"unk_id": 2', '"unk_id":2'));
  r = run({ source: prepared.dir, tokenizer: join(dir, 'other.json') });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /was prepared with tokenizer .*tokenizer\.json \(sha256 [0-9a-f]{12}\), but the config's data\.tokenizer is .*other\.json \(sha256 [0-9a-f]{12}\): their ids differ/);
  assert.equal(existsSync(runs), false, 'nothing written');
});

test('end to end with a tokenizer.json: train, the checkpoint carries the file, sample from a copied-out checkpoint, report names it', () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'tok'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(FIXTURE, f), join(dir, 'tok', f));
  const config = join(dir, 'run.yaml');
  writeFileSync(config, stringify({
    name: 'uni', model: { preset: 'nano', n_layers: 2, vocab_size: 2048 },
    train: { steps: 4, batch_size: 2, seq_len: 16, warmup_steps: 1, eval_every: 2, eval_batches: 1, checkpoint_every: 4 },
    data: { source: DOCS, tokenizer: 'tok', batching: 'truncate' }, output: { runs_dir: join(dir, 'runs') },
  }));
  const r = runCli(['train', config, '--backend', 'wasm']);
  assert.equal(r.code, 0, r.stderr);
  const runDir = readdirSync(join(dir, 'runs')).find((f) => f.startsWith('uni-'))!;
  const step = join(dir, 'runs', runDir, 'checkpoints', 'step-00000004');
  assert.deepEqual(readFileSync(join(step, 'tokenizer.json')), readFileSync(TOKENIZER));
  assert.deepEqual(readFileSync(join(step, 'tokenizer_config.json')), readFileSync(join(FIXTURE, 'tokenizer_config.json')));
  const generation = JSON.parse(readFileSync(join(step, 'generation_config.json'), 'utf8'));
  assert.deepEqual([generation.eos_token_id, generation.pad_token_id, generation.normlab_tokenizer.name], [1, 0, 'tokenizer.json']);
  cpSync(step, join(dir, 'lone'), { recursive: true });
  rmSync(join(dir, 'tok'), { recursive: true });
  const s = runCli(['sample', join(dir, 'lone'), '--prompt', 'The', '--max-tokens', '5', '--backend', 'wasm']);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^The/);
  const report = runCli(['report', '--runs-dir', join(dir, 'runs')]);
  assert.equal(report.code, 0, report.stderr);
  assert.match(report.stdout, /tok\/tokenizer\.json \(sha256 [0-9a-f]{8}/);
});
