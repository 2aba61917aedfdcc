import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { stringify } from 'yaml';
import { openDataset, readMeta, type SplitReader } from '../src/data/dataset.ts';
import { DataError } from '../src/data/errors.ts';
import { type PrepareOptions, prepareDataset } from '../src/data/prepare.ts';
import { hash32 } from '../src/data/rng.ts';
import { loadTokenizer } from '../src/data/tokenizers.ts';
import { trainingBatches } from '../src/data/training.ts';
import { runCli, tempDir } from './helpers/cli.ts';

/** Documents in C4's layout, with text that exercises UTF-8 and JSON escapes. */
function c4Documents(n: number, tag = 'doc'): { text: string; timestamp: string; url: string }[] {
  return Array.from({ length: n }, (_, i) => ({
    text: `${tag} ${i}: Ünïcödé "quoted" — 東京 🙂\nsecond line\twith tab, ${'word '.repeat(i % 7)}end.`,
    timestamp: '2019-04-25T12:57:54Z',
    url: `https://example.com/${i}`,
  }));
}

const jsonLines = (records: object[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

function writeGz(dir: string, name: string, records: object[]): string {
  const file = join(dir, name);
  writeFileSync(file, gzipSync(jsonLines(records)));
  return file;
}

/** Each split's documents as text, in order (the end id separates them). */
async function decodeSplit(split: SplitReader, tokenizer: string): Promise<string[]> {
  const tok = await loadTokenizer(tokenizer);
  return Array.from({ length: split.documents }, (_, d) => {
    const { start, end } = split.document(d);
    const ids = new Int32Array(end - start);
    split.read(start, end - start, ids, 0);
    assert.equal(ids[ids.length - 1], tok.eot, 'each document ends with the end id');
    return tok.decode(ids.subarray(0, -1));
  });
}

const prepare = (opts: Partial<PrepareOptions> & Pick<PrepareOptions, 'sources' | 'out'>) =>
  prepareDataset({ tokenizer: 'byte', workers: 0, valFraction: 0.25, ...opts });

/** Asserts the promise rejects with a DataError whose message matches every pattern. */
async function refused(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(promise, (e: Error) => {
    assert.ok(e instanceof DataError, `expected a DataError, got ${e}`);
    assert.equal((e as DataError).exitCode, 2);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test('a C4-layout .json.gz prepares into shards that decode back to its documents, split by the rule', async () => {
  const dir = tempDir();
  const docs = c4Documents(80);
  const file = writeGz(dir, 'c4-train.00000-of-01024.json.gz', docs);
  for (const tokenizer of ['byte', 'gpt2', 'llama']) {
    const { meta, dir: out } = await prepare({ sources: [file], out: join(dir, tokenizer), tokenizer, splitSeed: 3 });
    assert.equal(meta.dtype, tokenizer === 'byte' ? 'uint8' : 'uint16', 'byte tokens take a byte each');
    assert.deepEqual(meta.sources, [{ source: file, bytes: statSync(file).size, mtimeMs: statSync(file).mtimeMs, sha256: meta.sources[0].sha256 }]);
    assert.match(meta.sources[0].sha256, /^[0-9a-f]{64}$/);
    const isVal = (i: number) => hash32(3, i) / 2 ** 32 < 0.25;
    const { train, val } = openDataset(out);
    assert.deepEqual(await decodeSplit(train, tokenizer), docs.filter((_, i) => !isVal(i)).map((d) => d.text), tokenizer);
    assert.deepEqual(await decodeSplit(val, tokenizer), docs.filter((_, i) => isVal(i)).map((d) => d.text), tokenizer);
    assert.equal(meta.train.documents + meta.val.documents, 80);
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.partial-')), [], 'no temporary folder left');
  }
});

test('every source kind: text files, folders, plain and gzipped JSON lines, globs, a text field, the embedded corpus', async () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'corpus', 'nested'), { recursive: true });
  mkdirSync(join(dir, 'corpus', '.hidden'));
  writeFileSync(join(dir, 'corpus', 'b.txt'), 'text file b\n');
  writeFileSync(join(dir, 'corpus', 'nested', 'a.md'), 'markdown a');
  writeFileSync(join(dir, 'corpus', '.hidden', 'x.txt'), 'hidden: skipped');
  writeFileSync(join(dir, 'corpus', 'notes.csv'), 'not a source kind: skipped in folders');
  const lines = ['one', 'two', 'three', 'four', 'five', 'six'].map((n) => `jsonl ${n}`);
  writeFileSync(join(dir, 'corpus', 'c.jsonl'), jsonLines(lines.map((content) => ({ content }))));
  writeGz(join(dir, 'corpus'), 'd.json.gz', [{ content: 'gz one' }]);
  const texts = async (sources: string[]) => {
    const { dir: out } = await prepare({ sources, out: join(dir, `out-${Math.random()}`), valFraction: 0.3, textField: 'content' });
    const { train, val } = openDataset(out);
    return [...await decodeSplit(train, 'byte'), ...await decodeSplit(val, 'byte')].sort();
  };
  assert.deepEqual(await texts([join(dir, 'corpus')]), ['gz one', ...lines, 'markdown a', 'text file b\n'].sort());
  assert.deepEqual(await texts([join(dir, 'corpus', '*.{jsonl,json.gz}')]), ['gz one', ...lines].sort());
  assert.deepEqual(await texts([join(dir, 'corpus', '**', '*.md'), join(dir, 'corpus', 'b.txt'), join(dir, 'corpus', 'c.jsonl')]), [...lines, 'markdown a', 'text file b\n'].sort());

  const folder = await prepare({ sources: [join(dir, 'corpus')], out: join(dir, 'order'), valFraction: 0.3, textField: 'content' });
  assert.deepEqual(folder.meta.sources.map((s) => s.source.slice(dir.length + 1)), ['corpus/b.txt', 'corpus/c.jsonl', 'corpus/d.json.gz', 'corpus/nested/a.md'], 'sorted, recursive, hidden skipped');

  const brown = await prepare({ sources: ['brown'], out: join(dir, 'brown'), valFraction: 0.05 });
  assert.equal(brown.meta.train.documents + brown.meta.val.documents, 500);
  assert.deepEqual(brown.meta.sources.map((s) => s.source), ['corpus:brown']);
});

test('the split and the tokens are deterministic: same inputs, same bytes; worker threads change nothing', async () => {
  const dir = tempDir();
  const file = writeGz(dir, 'c4.json.gz', c4Documents(300));
  const bytes = (out: string) => readdirSync(out).filter((f) => f !== 'meta.json').sort().map((f) => readFileSync(join(out, f)).toString('hex'));
  const a = await prepare({ sources: [file], out: join(dir, 'a'), tokenizer: 'gpt2' });
  const b = await prepare({ sources: [file], out: join(dir, 'b'), tokenizer: 'gpt2', workers: 2 });
  assert.equal(b.workers, 2);
  assert.deepEqual(bytes(b.dir), bytes(a.dir));
  const other = await prepare({ sources: [file], out: join(dir, 'c'), tokenizer: 'gpt2', splitSeed: 1 });
  assert.notEqual(other.meta.val.tokens, a.meta.val.tokens, 'another seed, another split');
  assert.equal(other.meta.val.tokens + other.meta.train.tokens, a.meta.val.tokens + a.meta.train.tokens);
});

test('shards end at document boundaries and a window reads across them', async () => {
  const dir = tempDir();
  const file = writeGz(dir, 'c4.json.gz', c4Documents(60));
  const { dir: out, meta } = await prepare({ sources: [file], out: join(dir, 'ds'), shardTokens: 500 });
  assert.ok(meta.train.shards.length > 5, `${meta.train.shards.length} shards`);
  assert.ok(meta.train.shards.every((s) => s.tokens <= 500 || s.tokens === meta.train.tokens));
  const { train } = openDataset(out);
  const whole = new Int32Array(train.length);
  train.read(0, train.length, whole, 0);
  const joined = Buffer.concat(meta.train.shards.map((s) => readFileSync(join(out, s.file))));
  assert.deepEqual(whole, Int32Array.from(joined), 'uint8 on disk');
  const across = new Int32Array(100);
  train.read(meta.train.shards[0].tokens - 50, 100, across, 0);
  assert.deepEqual(across, whole.subarray(meta.train.shards[0].tokens - 50, meta.train.shards[0].tokens + 50));
});

test('an up-to-date dataset is reused; a copied source with the same content too; a changed one is rebuilt', async () => {
  const dir = tempDir();
  const file = writeGz(dir, 'c4.json.gz', c4Documents(40));
  const out = join(dir, 'ds');
  const first = await prepare({ sources: [file], out });
  const metaTime = statSync(join(out, 'meta.json')).mtimeMs;
  const again = await prepare({ sources: [file], out });
  assert.equal(again.reused, true);
  assert.equal(statSync(join(out, 'meta.json')).mtimeMs, metaTime, 'nothing rewritten');
  utimesSync(file, new Date(), new Date(Date.now() + 5000)); // touched (or copied): same bytes
  assert.equal((await prepare({ sources: [file], out })).reused, true);
  assert.equal((await prepare({ sources: [file], out, force: true })).reused, false);
  assert.equal((await prepare({ sources: [file], out, tokenizer: 'gpt2' })).reused, false, 'another tokenizer');
  writeGz(dir, 'c4.json.gz', c4Documents(41));
  const rebuilt = await prepare({ sources: [file], out });
  assert.equal(rebuilt.reused, false);
  assert.equal(rebuilt.meta.train.documents + rebuilt.meta.val.documents, 41);
  assert.notEqual(rebuilt.meta.sources[0].sha256, first.meta.sources[0].sha256);
  assert.deepEqual(readdirSync(dir).sort(), ['c4.json.gz', 'ds'], 'no .partial or .old folder left');
  await refused(prepare({ sources: [out], out: join(dir, 'again') }), /ds: a prepared dataset, not a source/);
});

test('each bad input is an error naming the file (and line), and nothing is written', async () => {
  const dir = tempDir();
  const out = join(dir, 'never');
  const write = (name: string, content: string | Buffer) => {
    writeFileSync(join(dir, name), content);
    return join(dir, name);
  };
  const good = jsonLines(c4Documents(3));
  await refused(prepare({ sources: [join(dir, 'absent.jsonl')], out }), /absent\.jsonl: no such file or folder/);
  await refused(prepare({ sources: [write('empty.jsonl', '')], out }), /empty\.jsonl: empty file/);
  await refused(prepare({ sources: [join(dir, 'nothing-*.jsonl')], out }), /nothing-\*\.jsonl: the pattern matches no file/);
  await refused(prepare({ sources: [write('table.csv', 'a,b\n')], out }), /table\.csv: not a known kind of source file; expected \.txt/);
  await refused(prepare({ sources: [write('blank.jsonl', '\n\n')], out }), /blank\.jsonl: no documents/);
  await refused(prepare({ sources: [write('bad.jsonl', good + '{"text": "unterminated\n' + good)], out }),
    /bad\.jsonl:4: not valid JSON .*--skip-bad-lines/);
  await refused(prepare({ sources: [write('field.jsonl', good + '{"body": "x", "url": "u"}\n')], out }),
    /field\.jsonl:4: no "text" field \(its fields: body, url\); name the text field with --text-field/);
  await refused(prepare({ sources: [write('type.jsonl', '{"text": 42}\n')], out }), /type\.jsonl:1: the "text" field is a number, not a string/);
  await refused(prepare({ sources: [write('array.jsonl', '["text"]\n')], out }), /array\.jsonl:1: expected a JSON object with a "text" field, got an array/);
  await refused(prepare({ sources: [write('latin1.jsonl', Buffer.concat([Buffer.from(good), Buffer.from('{"text": "caf\xe9"}\n', 'latin1')]))], out }),
    /latin1\.jsonl:4: not valid UTF-8/);
  await refused(prepare({ sources: [write('nul.jsonl', '{"text": "a\\u0000b"}\n')], out }), /nul\.jsonl:1: text contains NUL/);
  const gz = gzipSync(jsonLines(c4Documents(2000)));
  await refused(prepare({ sources: [write('cut.json.gz', gz.subarray(0, gz.length >> 1))], out }), /cut\.json\.gz: reading the gzip data failed \(a truncated or corrupt file\?\)/);
  await refused(prepare({ sources: [write('plain.json.gz', good)], out }), /plain\.json\.gz: reading the gzip data failed/);
  await refused(prepare({ sources: [write('latin1.txt', Buffer.from('caf\xe9', 'latin1'))], out }), /latin1\.txt: not UTF-8 text/);
  await refused(prepare({ sources: [write('two.jsonl', jsonLines(c4Documents(2)))], out, valFraction: 0.01 }),
    /left the validation set empty \(2 documents at val_fraction 0\.01\); raise --val-fraction/);
  await refused(prepare({ sources: ['brown'], out, tokenizer: 'sentencepiece' }), /tokenizer 'sentencepiece': no such file or folder; expected byte, gpt2, llama, t5, or a Hugging Face tokenizer\.json/);
  await refused(prepare({ sources: ['brown'], out, valFraction: 1 }), /validation fraction must be in \(0, 1\)/);
  const taken = join(dir, 'taken');
  mkdirSync(taken);
  writeFileSync(join(taken, 'precious.txt'), 'keep me');
  await refused(prepare({ sources: ['brown'], out: taken }), /taken: the folder exists and is not a prepared dataset; refusing/);
  assert.equal(readFileSync(join(taken, 'precious.txt'), 'utf8'), 'keep me');
  assert.ok(!existsSync(out), 'nothing written');
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.partial-')), []);
});

test('--skip-bad-lines counts and skips bad lines; empty texts are skipped and counted', async () => {
  const dir = tempDir();
  const file = join(dir, 'mixed.jsonl');
  writeFileSync(file, jsonLines(c4Documents(20)) + '{broken\n{"url": "no text"}\n{"text": ""}\n' + jsonLines(c4Documents(20, 'more')));
  const { meta, badExamples, dir: out } = await prepare({ sources: [file], out: join(dir, 'ds'), skipBadLines: true });
  assert.deepEqual(meta.skipped, { badLines: 2, emptyDocuments: 1 });
  assert.equal(meta.train.documents + meta.val.documents, 40);
  assert.match(badExamples[0], /mixed\.jsonl:21: not valid JSON/);
  assert.match(badExamples[1], /mixed\.jsonl:22: no "text" field/);
  const { train, val } = openDataset(out);
  const all = [...await decodeSplit(train, 'byte'), ...await decodeSplit(val, 'byte')];
  assert.ok(all.every((t) => /^(doc|more) \d+:/.test(t)));
});

test('an interrupted prepare leaves nothing that reads as a dataset, and its leftovers are cleared next time', async () => {
  const dir = tempDir();
  const file = writeGz(dir, 'c4.json.gz', c4Documents(50));
  const out = join(dir, 'ds');
  const abort = new AbortController();
  abort.abort();
  await assert.rejects(prepare({ sources: [file], out, signal: abort.signal }), { name: 'AbortError' });
  assert.deepEqual(readdirSync(dir), ['c4.json.gz'], 'the temporary folder is removed');

  const done = await prepare({ sources: [file], out });
  // What a SIGKILLed prepare leaves: a partial folder, no meta.json, under a pid that is gone.
  const killed = join(dir, 'ds2.partial-999999999-1');
  cpSync(done.dir, killed, { recursive: true });
  truncateSync(join(killed, 'meta.json'), 0);
  assert.throws(() => readMeta(join(dir, 'ds2')), /not a prepared dataset \(no meta\.json\)/);
  await prepare({ sources: [file], out: join(dir, 'ds2') });
  assert.ok(!existsSync(killed), 'the dead prepare\'s folder is removed');

  truncateSync(join(out, 'train-00000.bin'), 10);
  assert.throws(() => readMeta(out), (e: Error) => e instanceof DataError && /train-00000\.bin: 10 bytes, but meta\.json promises \d+ bytes; .*prepare it again/.test(e.message));
  assert.equal((await prepare({ sources: [file], out })).reused, false, 'a damaged dataset is rebuilt');
});

test('token ids must fit the model: tokenizer, vocab and split mismatches are errors before training', async () => {
  const dir = tempDir();
  const file = writeGz(dir, 'c4.json.gz', c4Documents(60));
  const { dir: gpt2 } = await prepare({ sources: [file], out: join(dir, 'gpt2'), tokenizer: 'gpt2', valFraction: 0.05 });
  const { train } = openDataset(gpt2, 256);
  assert.throws(() => train.read(0, train.length, new Int32Array(train.length), 0),
    /train-00000\.bin: token \d+ is id \d+, not below the model's vocab_size 256/);
  const data = { corpus: 'brown', source: gpt2, tokenizer: 'gpt2', val_fraction: 0.05, batching: 'packed' as const };
  const batch = { batchSize: 2, seqLen: 8, seed: 0, evalBatches: 1, vocabSize: 50304 };
  const cache = join(dir, 'cache');
  await trainingBatches(data, batch, cache);
  await refused(trainingBatches({ ...data, tokenizer: 'byte' }, batch, cache), /prepared with tokenizer gpt2, but the config's data\.tokenizer is byte: their ids differ/);
  await refused(trainingBatches(data, { ...batch, vocabSize: 32000 }, cache), /holds id 50256, not below model\.vocab_size 32000; set model\.vocab_size to at least 50257/);
  await refused(trainingBatches({ ...data, val_fraction: 0.1 }, batch, cache), /data\.val_fraction is 0\.1; set data\.val_fraction: 0\.05/);
});

test('the CLI prepares a C4 file and trains on it with truncate batching; a bad line exits 2 naming it', () => {
  const dir = tempDir();
  const file = writeGz(dir, 'c4-train.00000-of-01024.json.gz', c4Documents(200));
  const out = join(dir, 'c4-gpt2');
  const prepared = runCli(['data', 'prepare', file, '--tokenizer', 'gpt2', '--out', out, '--workers', '0']);
  assert.equal(prepared.code, 0, prepared.stderr);
  assert.match(prepared.stdout, /c4-gpt2: gpt2 tokens \(vocab 50257, end id 50256, pad id 50256, largest id \d+, uint16\)/);
  assert.match(prepared.stdout, /tokens\/s; peak RSS \d+ MiB/);
  assert.match(runCli(['data', 'prepare', file, '--tokenizer', 'gpt2', '--out', out]).stdout, /is up to date/);

  const config = join(dir, 'c4.yaml');
  writeFileSync(config, stringify({
    name: 'c4', model: { preset: 'nano', n_layers: 1, vocab_size: 50257 },
    train: { steps: 3, batch_size: 2, seq_len: 16, warmup_steps: 1, eval_every: 3, eval_batches: 1, diag_every: 0, checkpoint_every: 0 },
    data: { source: out, tokenizer: 'gpt2', batching: 'truncate' },
    output: { runs_dir: join(dir, 'runs') },
  }));
  const trained = runCli(['train', config, '--quiet']);
  assert.equal(trained.code, 0, trained.stderr);

  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"text": "fine"}\n{"text": oops}\n');
  const failed = runCli(['data', 'prepare', bad, '--tokenizer', 'byte', '--out', join(dir, 'bad')]);
  assert.equal(failed.code, 2);
  assert.match(failed.stderr, /bad\.jsonl:2: not valid JSON/);
  assert.ok(!existsSync(join(dir, 'bad')));
});

test('train prepares a source named in the config on first use and reuses it after', () => {
  const dir = tempDir();
  writeGz(dir, 'c4.json.gz', c4Documents(200));
  const config = join(dir, 'src.yaml');
  writeFileSync(config, stringify({
    name: 'src', model: { preset: 'nano', n_layers: 1 },
    train: { steps: 2, batch_size: 2, seq_len: 16, warmup_steps: 1, eval_every: 2, eval_batches: 1, diag_every: 0, checkpoint_every: 0 },
    data: { source: join(dir, '*.json.gz'), tokenizer: 'byte', split_seed: 4 },
    output: { runs_dir: join(dir, 'runs') },
  }));
  assert.equal(runCli(['train', config, '--quiet']).code, 0);
  const cache = join(dir, 'runs', '.cache', 'data');
  const [key] = readdirSync(cache);
  const meta = readMeta(join(cache, key));
  assert.equal(meta.split.seed, 4);
  const metaTime = statSync(join(cache, key, 'meta.json')).mtimeMs;
  const again = runCli(['train', config, '--quiet', '--restart']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(statSync(join(cache, key, 'meta.json')).mtimeMs, metaTime, 'reused, not rebuilt');
});

test('validation sources: exact copies of training documents are dropped, counted in meta.json and printed', () => {
  const dir = tempDir();
  const train = c4Documents(30, 'train');
  const val = [...c4Documents(8, 'val'), train[3], train[17], { ...train[5], url: 'https://elsewhere.example/' }];
  const trainFile = writeGz(dir, 'c4-train.00000-of-01024.json.gz', train);
  const valFile = writeGz(dir, 'c4-validation.00000-of-00008.json.gz', val);
  const r = runCli(['data', 'prepare', trainFile, '--val-source', join(dir, 'c4-validation.*.json.gz'), '--tokenizer', 'gpt2', '--out', join(dir, 'ds')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /val {3}8 documents, [\d,]+ tokens from 1 validation source; 3 exact copies of training documents dropped/);
  const meta = readMeta(join(dir, 'ds'));
  assert.deepEqual([meta.train.documents, meta.val.documents, meta.split.duplicatesDropped, meta.split.valSources], [30, 8, 3, [valFile]]);
  const both = runCli(['data', 'prepare', trainFile, '--val-source', trainFile, '--tokenizer', 'gpt2', '--out', join(dir, 'both')]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /named as both a training source \(data\.source\) and a validation source/);
  assert.equal(existsSync(join(dir, 'both')), false);
});

test('the hash split drops validation documents a training document has the text of, counts them in meta.json and prints it', async () => {
  const dir = tempDir();
  const unique = c4Documents(60, 'page');
  // Each page 1–4 times, copies scattered over two files (a crawl repeats pages, with other urls).
  const copies = unique.flatMap((d, i) => Array.from({ length: 1 + (i % 4) }, (_, k) => ({ ...d, url: `${d.url}?copy=${k}` })));
  const order = copies.map((_, i) => i).sort((a, b) => hash32(7, a) - hash32(7, b)).map((i) => copies[i]);
  const half = order.length >> 1;
  const files = [writeGz(dir, 'a.json.gz', order.slice(0, half)), writeGz(dir, 'b.json.gz', order.slice(half))];
  // The positional rule (seed 0, val_fraction 0.3), then the copies of training documents out of validation.
  const isVal = (i: number) => hash32(0, i) / 2 ** 32 < 0.3;
  const trainTexts = order.filter((_, i) => !isVal(i)).map((d) => d.text);
  const inTrain = new Set(trainTexts);
  const candidates = order.filter((_, i) => isVal(i)).map((d) => d.text);
  const kept = candidates.filter((t) => !inTrain.has(t));
  const dropped = candidates.length - kept.length;
  assert.ok(dropped > 0 && kept.length > 0, 'the fixture puts copies of training pages into validation, and keeps some');
  assert.ok(kept.length > new Set(kept).size, 'and copies of a page only validation holds, which stay');

  const r = runCli(['data', 'prepare', ...files, '--tokenizer', 'byte', '--val-fraction', '0.3', '--workers', '0', '--out', join(dir, 'ds')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`val {3}${kept.length} documents, [\\d,]+ tokens \\(val_fraction 0\\.3, split_seed 0\\); ${dropped} exact copies of training documents dropped`));
  const { meta, train, val } = openDataset(join(dir, 'ds'));
  assert.equal(meta.split.duplicatesDropped, dropped);
  assert.deepEqual(await decodeSplit(train, 'byte'), trainTexts, 'no training document dropped, in source order');
  assert.deepEqual(await decodeSplit(val, 'byte'), kept, 'validation in source order, no document equal to a training one');
  assert.deepEqual(readdirSync(join(dir, 'ds')).filter((f) => !/^(meta\.json|(train|val)(-\d{5}\.bin|\.idx))$/.test(f)), [], 'nothing but the dataset left');

  const json = runCli(['data', 'prepare', ...files, '--tokenizer', 'byte', '--val-fraction', '0.3', '--out', join(dir, 'ds'), '--json']);
  assert.equal(JSON.parse(json.stdout).duplicatesDropped, dropped);

  // Small shards: the validation split is rewritten across several, cut where a fresh write would cut them.
  const small = await prepare({ sources: files, out: join(dir, 'small'), valFraction: 0.3, shardTokens: 150 });
  assert.ok(small.meta.val.shards.length > 2, `${small.meta.val.tokens} tokens in ${small.meta.val.shards.length} shards`);
  assert.equal(small.meta.split.duplicatesDropped, dropped);
  assert.deepEqual(await decodeSplit(openDataset(small.dir).val, 'byte'), kept);
});

test('a hash split whose validation documents all have copies in training is refused, naming why', async () => {
  const dir = tempDir();
  const page = c4Documents(1, 'page')[0];
  const file = writeGz(dir, 'same.json.gz', Array.from({ length: 40 }, (_, k) => ({ ...page, url: `${page.url}?${k}` })));
  await refused(prepare({ sources: [file], out: join(dir, 'ds') }), /every validation document is also a training document \(\d+ dropped as duplicates\)/, /--val-fraction/);
  assert.equal(existsSync(join(dir, 'ds')), false);
});
