// Issue 20: `normlab doctor` lists the named tokenizers it can find — the file
// each resolves to and its sha256 prefix, or where to put the file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tokenizerLines } from '../src/cli/doctor.ts';
import { namedTokenizers } from '../src/data/hf.ts';
import { ROOT, runCli, tempDir } from './helpers/cli.ts';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'unigram', 'tokenizer.json');
const SHA256 = createHash('sha256').update(readFileSync(FIXTURE)).digest('hex');

/** A Hugging Face hub cache holding `file` as t5-base's tokenizer.json; returns the cache and the file's path in it. */
function hubWith(file: string): { hub: string; path: string } {
  const hub = join(tempDir('normlab-hub-'), 'hub');
  const snapshot = join(hub, 'models--google-t5--t5-base', 'snapshots', '0123abc');
  mkdirSync(snapshot, { recursive: true });
  cpSync(file, join(snapshot, 'tokenizer.json'));
  return { hub, path: join(snapshot, 'tokenizer.json') };
}

test('a named tokenizer found in the Hugging Face cache or $NORMLAB_TOKENIZERS: its path, sha256 and size', () => {
  const { hub, path } = hubWith(FIXTURE);
  assert.deepEqual(namedTokenizers({ HF_HUB_CACHE: hub }), [{ name: 't5', path, sha256: SHA256, vocabSize: 2000 }]);
  const own = tempDir('normlab-own-');
  mkdirSync(join(own, 't5'));
  cpSync(FIXTURE, join(own, 't5', 'tokenizer.json'));
  assert.equal(namedTokenizers({ HF_HUB_CACHE: hub, NORMLAB_TOKENIZERS: own })[0].path, join(own, 't5', 'tokenizer.json'), '$NORMLAB_TOKENIZERS first');

  const lines = tokenizerLines(namedTokenizers({ HF_HUB_CACHE: hub }));
  assert.match(lines[0], /^tokenizers .*never downloads/);
  assert.equal(lines[1], '  byte, gpt2, llama  built in');
  assert.equal(lines[2], `  t5                 ${path} (sha256 ${SHA256.slice(0, 12)}; 2,000 ids)`);
});

test('a named tokenizer not found: where it was looked for, where to put tokenizer.json and how to get it', () => {
  const home = tempDir('normlab-hf-home-');
  const [t5] = namedTokenizers({ HF_HOME: home });
  assert.equal(t5.path, undefined);
  const hubSnapshot = join(home, 'hub', 'models--google-t5--t5-base', 'snapshots', '<any>', 'tokenizer.json');
  assert.deepEqual(t5.putAt, [join('$NORMLAB_TOKENIZERS', 't5', 'tokenizer.json'), hubSnapshot]);
  const [line] = tokenizerLines([t5]).slice(2);
  assert.ok(line.startsWith(`  t5                 not found: put tokenizer.json at $NORMLAB_TOKENIZERS/t5/tokenizer.json or ${hubSnapshot} (looked in `), line);
  assert.ok(line.includes(join(home, 'hub', 'models--t5-base', 'snapshots', '*', 'tokenizer.json')), 'both cache layouts searched');
  assert.match(line, /on a machine with network access: huggingface-cli download t5-base tokenizer\.json/);

  const [named] = namedTokenizers({ HF_HOME: home, NORMLAB_TOKENIZERS: '/opt/tokenizers' });
  assert.equal(named.putAt![0], join('/opt/tokenizers', 't5', 'tokenizer.json'), 'the folder $NORMLAB_TOKENIZERS names');
});

test('a named tokenizer.json that does not load is listed with the reason, not as usable', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'cut.json'), readFileSync(FIXTURE, 'utf8').slice(0, 300));
  const { hub, path } = hubWith(join(dir, 'cut.json'));
  const [t5] = namedTokenizers({ HF_HUB_CACHE: hub });
  assert.equal(t5.path, path);
  const [line] = tokenizerLines([t5]).slice(2);
  assert.match(line, /\(sha256 [0-9a-f]{12}; cannot be used: .*Hugging Face tokenizers cannot load it/);
  assert.doesNotMatch(line, /ids\)$/);
});

test('normlab doctor lists the named tokenizers it finds, between the CUDA libraries and the GPU summary', () => {
  const { hub, path } = hubWith(FIXTURE);
  const r = runCli(['doctor'], ROOT, { HF_HUB_CACHE: hub, NORMLAB_TOKENIZERS: '' });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  const at = lines.findIndex((l) => l.startsWith('tokenizers '));
  assert.ok(at > lines.findIndex((l) => l.includes('CUDA libraries')), r.stdout);
  assert.deepEqual(lines.slice(at + 1, at + 4), ['  byte, gpt2, llama  built in', `  t5                 ${path} (sha256 ${SHA256.slice(0, 12)}; 2,000 ids)`, '']);
  assert.match(lines.at(-1)!, /GPU backend/);
});
