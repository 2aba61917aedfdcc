// What `data prepare` says while and after it runs: progress counts that reach
// their totals, and throughput in uncompressed text, not in gzip bytes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { type PrepareProgress, prepareDataset } from '../src/data/prepare.ts';
import { BIN, ROOT, runCli, tempDir } from './helpers/cli.ts';

const MiB = 2 ** 20;

/** C4-layout documents that gzip well (so compressed and text bytes differ many times over), with multi-byte UTF-8. */
function documents(n: number, tag: string): string[] {
  return Array.from({ length: n }, (_, i) => `${tag} ${i}: Ünïcödé 東京 — ${'the quick brown fox jumps over the lazy dog. '.repeat(20 + (i % 30))}`);
}

function writeGz(dir: string, name: string, texts: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, gzipSync(texts.map((text) => JSON.stringify({ text, url: 'https://example.com/' })).join('\n') + '\n'));
  return file;
}

const utf8Bytes = (texts: string[]) => texts.reduce((n, t) => n + Buffer.byteLength(t), 0);

test('progress counts only grow and end at their totals: every source byte read (twice for validation sources), every document written', async () => {
  const dir = tempDir();
  const train = documents(3000, 'train');
  const val = [...documents(200, 'val'), train[5], train[6]];
  const files = [writeGz(dir, 'a.json.gz', train.slice(0, 1500)), writeGz(dir, 'b.json.gz', train.slice(1500))];
  const valFile = writeGz(dir, 'val.json.gz', val);
  const size = (f: string) => statSync(f).size;

  for (const withVal of [false, true]) {
    const seen: PrepareProgress[] = [];
    const r = await prepareDataset({
      sources: files, ...(withVal && { valSources: [valFile] }), tokenizer: 'byte', workers: 0, out: join(dir, `ds-${withVal}`),
      onProgress: (p) => seen.push({ ...p }),
    });
    assert.ok(seen.length > 2, 'a progress report per chunk');
    for (const [a, b] of seen.slice(1).map((p, i) => [seen[i], p])) {
      for (const key of ['sourceBytes', 'textBytes', 'documents', 'tokens'] as const) assert.ok(b[key] >= a[key], `${key} never goes back`);
      assert.equal(b.totalSourceBytes, a.totalSourceBytes, 'the total is fixed up front');
    }
    const last = seen.at(-1)!;
    const total = size(files[0]) + size(files[1]) + (withVal ? 2 * size(valFile) : 0);
    assert.equal(last.totalSourceBytes, total, withVal ? 'validation files are read twice' : 'the gzip files as stored');
    assert.equal(last.sourceBytes, total, 'the source count reaches its total');
    assert.equal(last.documents, r.meta.train.documents + r.meta.val.documents, 'the document count reaches what was written');
    assert.equal(last.tokens, r.meta.train.tokens + r.meta.val.tokens);
    assert.equal(last.textBytes, utf8Bytes([...train, ...(withVal ? val : [])]), 'text counted in UTF-8 bytes, uncompressed');
    if (withVal) assert.equal(last.documents, 3000 + 200, 'the dropped copies are not counted as written');
  }
});

test('prepare reports throughput in MiB of uncompressed text, beside the gzip size, and its progress ends at 100% of the documents', () => {
  const dir = tempDir();
  const texts = documents(4000, 'doc');
  const file = writeGz(dir, 'c4-train.00000-of-01024.json.gz', texts);
  const text = utf8Bytes(texts);
  const gz = statSync(file).size;
  assert.ok(text > 20 * gz, 'the corpus compresses well, so the two units cannot be confused');

  const json = runCli(['data', 'prepare', file, '--tokenizer', 'byte', '--out', join(dir, 'json'), '--json']);
  assert.equal(json.code, 0, json.stderr);
  const outcome = JSON.parse(json.stdout);
  assert.deepEqual([outcome.textBytes, outcome.sourceBytes, outcome.documents], [text, gz, 4000]);

  const r = runCli(['data', 'prepare', file, '--tokenizer', 'byte', '--out', join(dir, 'plain')]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^100% {2}4,000 documents {2}[\d,]+ documents\/s {2}[\d,]+ tokens\/s$/, 'the last progress line: every document');
  const m = /^([\d.]+) MiB of text \(([\d.]+) MiB of source files\) in ([\d.]+) s with no worker threads: ([\d.]+) MiB\/s of text, ([\d,]+) tokens\/s; peak RSS \d+ MiB$/.exec(lines.at(-1)!);
  assert.ok(m, lines.at(-1));
  const [shownText, shownSource, seconds, rate] = m.slice(1, 5).map(Number);
  assert.equal(shownText, Number((text / MiB).toFixed(1)));
  assert.equal(shownSource, Number((gz / MiB).toFixed(1)));
  // Every figure is rounded to 0.1: the rate is the text over the time, within that rounding, and far above the gzip bytes over it.
  const slowest = (shownText - 0.05) / (seconds + 0.05) - 0.05;
  assert.ok(rate >= slowest, `${rate} MiB/s of text ≥ ${slowest}`);
  if (seconds >= 0.1) assert.ok(rate <= (shownText + 0.05) / (seconds - 0.05) + 0.05, `${rate} MiB/s of text over ${seconds} s`);
  assert.ok(rate > (gz / MiB) / Math.max(seconds - 0.05, 1e-3) * 10, 'not the rate of gzip bytes');
});

const hasScript = spawnSync('script', ['--version']).status === 0;

test('on a terminal the bar ends full, on the number of documents written', { skip: !hasScript && 'no `script` to give prepare a terminal' }, () => {
  const dir = tempDir();
  const file = writeGz(dir, 'c4.json.gz', documents(3000, 'doc'));
  const command = [process.execPath, BIN, 'data', 'prepare', file, '--tokenizer', 'byte', '--out', join(dir, 'ds')].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  assert.equal(r.status, 0, r.stdout);
  // cli-progress redraws the bar after moving to column 1; the last frame is what stays on the screen.
  const frames = r.stdout.split('\x1b[1G').filter((f) => f.includes('% |'));
  assert.ok(frames.length > 0, r.stdout);
  assert.match(frames.at(-1)!, /^100% \|.*\| 3,000 docs \|/);
});
