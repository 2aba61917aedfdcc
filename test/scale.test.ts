// Reports at the papers' scale, at a CI size: 2 runs × 20,000 steps of a
// 24-block, 219-tensor model with normlab's default cadences, written in the
// text layout of today's stores and migrated to the compact one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { binOf, envelope, PLOT_COLUMNS, stepBins } from '../src/report/reduce.ts';
import { RunStore } from '../src/store/store.ts';
import { runIdOf, writeSyntheticSweep } from '../scripts/synthetic-sweep.ts';
import { BIN, ROOT, tempDir } from './helpers/cli.ts';

const STEPS = 20_000;
const SPIKE = { step: 12_345, value: 60 };
const dir = tempDir('normlab-scale-');
const textRuns = writeSyntheticSweep({ dir: join(dir, 'text'), runs: 2, steps: STEPS, layers: 24, params: 219, layout: 'text', spike: SPIKE });
const compactRuns = join(dir, 'compact', 'runs');
cpSync(textRuns, compactRuns, { recursive: true });

/** The CLI in a child process, with its peak resident memory. */
function normlab(args: string[]): { code: number | null; stdout: string; stderr: string; peakMiB: number } {
  const r = spawnSync(process.execPath, ['--import', join(ROOT, 'test/helpers/peak-rss.mjs'), BIN, ...args], { cwd: ROOT, encoding: 'utf8' });
  const peak = /peak-rss-kib (\d+)/.exec(r.stderr);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, peakMiB: peak ? Number(peak[1]) / 1024 : NaN };
}

const version = (file: string) => {
  const db = new Database(file, { readonly: true });
  try { return db.pragma('user_version', { simple: true }) as number; } finally { db.close(); }
};
const storeOf = (runs: string, k: number) => join(runs, runIdOf(k), 'run.sqlite');

test('normlab store migrate moves a text-layout store to the compact layout, a third of the size or less', () => {
  const before = statSync(storeOf(compactRuns, 0)).size;
  const r = normlab(['store', 'migrate', '--runs-dir', compactRuns]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /version 1 → 2/);
  assert.equal(version(storeOf(compactRuns, 0)), 3);
  assert.equal(version(storeOf(textRuns, 0)), 1, 'the original is untouched');
  assert.ok(statSync(storeOf(compactRuns, 0)).size * 3 <= before, `${statSync(storeOf(compactRuns, 0)).size} vs ${before}`);
  assert.match(normlab(['store', 'migrate', '--runs-dir', compactRuns]).stdout, /already at the newest version/);
});

const reports = new Map<string, ReturnType<typeof normlab>>();
const reportOf = (layout: 'text' | 'compact') => {
  if (!reports.has(layout)) {
    const runs = layout === 'text' ? textRuns : compactRuns;
    reports.set(layout, normlab(['report', '--runs-dir', runs, '--title', 'Scale', '--format', 'md', '--out', join(dir, `report-${layout}`), '--figures', 'svg']));
  }
  return reports.get(layout)!;
};

test('the report of 2 runs × 20,000 steps completes in bounded memory, every SVG under 1 MB, captions counting the points', () => {
  const r = reportOf('text');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.peakMiB < 1024, `peak RSS ${r.peakMiB.toFixed(0)} MiB`);
  const figures = join(dir, 'report-text', 'figures');
  for (const f of readdirSync(figures)) assert.ok(statSync(join(figures, f)).size < 1_000_000, `${f}: ${statSync(join(figures, f)).size} bytes`);
  // The heatmaps: one embedded PNG per run, 24 blocks × at most 200 step buckets.
  const heat = readFileSync(join(figures, 'grad-norm-heatmap.svg'), 'utf8');
  const images = [...heat.matchAll(/href="data:image\/png;base64,([^"]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64'));
  assert.deepEqual(images.map((png) => [png.readUInt32BE(16), png.readUInt32BE(20)]), [[200, 24], [200, 24]]);
  const md = readFileSync(join(dir, 'report-text', 'report.md'), 'utf8');
  assert.match(md, /\*40,0\d\d points in 2 runs; each point the mean of up to \d+ steps, the band their min–max\.\*/);
  assert.match(md, /\*96,000 points; each cell the mean of up to \d+ steps\.\*/);
  assert.match(md, /metrics\.csv\]\(metrics\.csv\) \([\d.]+ MiB, 1,228,\d{3} rows\)/);
});

test('a store in today\'s layout reports identically to its migrated copy', () => {
  assert.equal(reportOf('text').code, 0);
  const compact = reportOf('compact');
  assert.equal(compact.code, 0, compact.stderr);
  const read = (layout: string, file: string) => readFileSync(join(dir, `report-${layout}`, file), 'utf8');
  assert.equal(read('compact', 'report.md'), read('text', 'report.md'));
  for (const f of readdirSync(join(dir, 'report-text', 'figures'))) assert.equal(read('compact', `figures/${f}`), read('text', `figures/${f}`), f);
  // Rows come metric by metric in both; within a metric the order follows the layout.
  const rows = (layout: string) => read(layout, 'metrics.csv').split('\n').sort();
  assert.deepEqual(rows('compact'), rows('text'));
});

test('a loss spike at one step is the maximum of its pixel column, and the top of the drawn band', () => {
  const store = RunStore.open(storeOf(compactRuns, 0), { readonly: true });
  const loss = store.scalarColumns(runIdOf(0), 'train/loss');
  store.close();
  const bins = stepBins(1, STEPS, PLOT_COLUMNS);
  const e = envelope(loss.steps, loss.values, bins);
  const k = binOf(bins, SPIKE.step);
  assert.equal(e.max[k], SPIKE.value, 'the bucket holding the spike keeps it as its max');
  assert.ok(e.mean[k]! < SPIKE.value / 5, 'while its mean hides it');

  assert.equal(reportOf('compact').code, 0);
  const svg = readFileSync(join(dir, 'report-compact', 'figures', 'loss.svg'), 'utf8');
  const band = [...svg.matchAll(/<path class="band" d="([^"]+)"/g)].flatMap((m) => [...m[1]!.matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)].map((p) => ({ x: Number(p[1]), y: Number(p[2]) })));
  const top = band.reduce((a, b) => (b.y < a.y ? b : a));
  const tick = (label: string) => Number(new RegExp(`<text x="([\\d.]+)"[^>]*>${label}</text>`).exec(svg)![1]);
  const expected = tick('10000') + ((SPIKE.step - 10_000) / 5000) * (tick('15000') - tick('10000'));
  assert.ok(Math.abs(top.x - expected) <= (tick('15000') - tick('10000')) / 5000 * bins.width + 1, `band top at x ${top.x}, the spike's column at ${expected.toFixed(1)}`);
  const secondHighest = band.filter((p) => Math.abs(p.x - top.x) > 2).reduce((a, b) => Math.min(a, b.y), Infinity);
  assert.ok(secondHighest - top.y > 20, 'the spike stands out of the band by more than 20 px');
});
