// Benchmark of reports at the papers' scale (issue #22): writes synthetic sweeps
// in normlab's own store layouts (scripts/synthetic-sweep.ts), then times
// `normlab report` (md + svg + png + long CSV) and `normlab runs` on each, in
// child processes, with their peak resident memory. Prints a Markdown table for
// docs/performance.md and the slope of the report's time in runs × steps.
//
//   node --import tsx scripts/bench-report.ts [--dir DIR] [--runs 8] [--steps 100000]
//     [--fractions 0.25,0.5,1] [--layouts compact,text] [--long-csv csv|gz|none]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gatherRuns } from '../src/report/gather.ts';
import { listing } from '../src/report/listing.ts';
import type { Layout } from '../src/store/store.ts';
import { writeSyntheticSweep } from './synthetic-sweep.ts';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'normlab');
const PEAK = join(ROOT, 'test', 'helpers', 'peak-rss.mjs');

interface Timed { seconds: number; cpuSeconds: number; peakMiB: number; stdout: string }

function normlab(args: string[]): Timed {
  const started = performance.now();
  const r = spawnSync(process.execPath, ['--import', PEAK, BIN, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = (performance.now() - started) / 1000;
  if (r.status !== 0) throw new Error(`normlab ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const peak = /peak-rss-kib (\d+) cpu-ms (\d+)/.exec(r.stderr);
  return { seconds, cpuSeconds: peak ? Number(peak[2]) / 1000 : NaN, peakMiB: peak ? Number(peak[1]) / 1024 : NaN, stdout: r.stdout };
}

const mib = (bytes: number) => bytes / 2 ** 20;

function sizeOf(dir: string, keep: (f: string) => boolean): number[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && keep(e.name)).map((e) => statSync(join(e.parentPath, e.name)).size);
}

interface Row {
  layout: Layout; runs: number; steps: number;
  storeMiB: number; largestStoreMiB: number; report: Timed; runsList: Timed; listingMs: number; maxSvgKiB: number; longCsvMiB: number;
}

/** The listing's own work (open every store, read what it shows), in this process: `runs` minus Node and module loading. */
function listingMs(runsDir: string): number {
  const started = performance.now();
  const gathered = gatherRuns(runsDir);
  listing(gathered.runs);
  gathered.close();
  return performance.now() - started;
}

function bench(dir: string, layout: Layout, runs: number, steps: number, longCsv: string): Row {
  const at = join(dir, `${layout}-${runs}x${steps}`);
  const runsDir = join(at, 'runs');
  if (!existsSync(runsDir)) {
    const started = performance.now();
    writeSyntheticSweep({ dir: at, runs, steps, layers: 24, params: 219, layout, compact: layout === 'compact' });
    console.error(`generated ${layout} ${runs} × ${steps} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  const out = join(at, 'report');
  rmSync(out, { recursive: true, force: true });
  const report = normlab(['report', '--runs-dir', runsDir, '--format', 'md', '--out', out, '--figures', 'svg,png', '--long-csv', longCsv]);
  const runsList = normlab(['runs', '--runs-dir', runsDir]);
  const stores = sizeOf(runsDir, (f) => f.endsWith('.sqlite'));
  const svgs = sizeOf(join(out, 'figures'), (f) => f.endsWith('.svg'));
  const csv = sizeOf(out, (f) => f.startsWith('metrics.csv'));
  const row: Row = {
    layout, runs, steps, storeMiB: mib(stores.reduce((a, b) => a + b, 0)), largestStoreMiB: mib(stores.reduce((a, b) => Math.max(a, b), 0)),
    report, runsList, listingMs: listingMs(runsDir), maxSvgKiB: svgs.reduce((a, b) => Math.max(a, b), 0) / 1024, longCsvMiB: mib(csv.reduce((a, b) => a + b, 0)),
  };
  rmSync(out, { recursive: true, force: true }); // the long CSV of a full sweep is gigabytes
  return row;
}

/** Least-squares slope and intercept of y over x. */
function fit(xs: number[], ys: number[]): { slope: number; intercept: number } {
  const n = xs.length, mx = xs.reduce((a, b) => a + b, 0) / n, my = ys.reduce((a, b) => a + b, 0) / n;
  const sxy = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0), sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const slope = sxx ? sxy / sxx : NaN;
  return { slope, intercept: my - slope * mx };
}

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: join(tmpdir(), 'normlab-bench-report') },
    runs: { type: 'string', default: '8' }, steps: { type: 'string', default: '100000' },
    fractions: { type: 'string', default: '0.25,0.5,1' }, layouts: { type: 'string', default: 'compact,text' },
    'long-csv': { type: 'string', default: 'csv' },
  },
});
const runs = Number(values.runs), steps = Number(values.steps);
console.error(`${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; stores under ${values.dir}`);
const rows: Row[] = [];
for (const layout of values.layouts.split(',') as Layout[]) {
  for (const fraction of values.fractions.split(',').map(Number)) {
    const row = bench(values.dir, layout, runs, Math.round(steps * fraction), values['long-csv']);
    rows.push(row);
    console.error(`${layout} ${row.runs} × ${row.steps}: report ${row.report.seconds.toFixed(1)} s, ${row.report.peakMiB.toFixed(0)} MiB; runs ${row.runsList.seconds.toFixed(2)} s`);
  }
}
console.log('| layout | runs × steps | stores (largest run) | report wall (CPU) | report peak RSS | largest SVG | long CSV | runs wall (CPU) | runs peak RSS | listing itself |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.layout} | ${r.runs} × ${r.steps.toLocaleString('en-US')} | ${r.storeMiB.toFixed(0)} MiB (${r.largestStoreMiB.toFixed(1)} MiB) | ${r.report.seconds.toFixed(1)} s (${r.report.cpuSeconds.toFixed(1)} s) | ${r.report.peakMiB.toFixed(0)} MiB | ${r.maxSvgKiB.toFixed(0)} KiB | ${r.longCsvMiB.toFixed(0)} MiB | ${r.runsList.seconds.toFixed(2)} s (${r.runsList.cpuSeconds.toFixed(2)} s) | ${r.runsList.peakMiB.toFixed(0)} MiB | ${r.listingMs.toFixed(0)} ms |`);
}
for (const layout of new Set(rows.map((r) => r.layout))) {
  const here = rows.filter((r) => r.layout === layout);
  if (here.length < 2) continue;
  const x = here.map((r) => (r.runs * r.steps) / 1e6);
  const wall = fit(x, here.map((r) => r.report.seconds)), cpu = fit(x, here.map((r) => r.report.cpuSeconds));
  console.log(`\n${layout}: report ≈ ${wall.intercept.toFixed(1)} s + ${wall.slope.toFixed(1)} s per million run-steps wall, ${cpu.intercept.toFixed(1)} s + ${cpu.slope.toFixed(1)} s CPU`);
}
console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
