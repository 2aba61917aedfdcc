import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveRunConfig } from '../src/config/load.ts';
import { depthProfileRunsTable, depthProfileTable, headlineTable, layerTables } from '../src/report/build.ts';
import { runFacts } from '../src/report/facts.ts';
import { analysisFigures } from '../src/report/analysis-figures.ts';
import { analysisLayerTables, analysisRunsTable } from '../src/report/analysis-tables.ts';
import { figures } from '../src/report/figures.ts';
import { gatherRuns } from '../src/report/gather.ts';
import { svgToPng } from '../src/report/png.ts';
import { buildReport, renderReport } from '../src/report/report.ts';
import { renderTable, type Stat } from '../src/report/tables.ts';
import { AnalysisStore, row } from '../src/store/analyses.ts';
import { RunStore, type RunStatus } from '../src/store/store.ts';
import { runCli, tempDir } from './helpers/cli.ts';

interface FakeRun {
  id: string;
  norm: string;
  seed: number;
  layers?: number;
  ppl: number;
  status?: RunStatus;
  sweep?: string | null;
  /** Where the run's rows go: its own run.sqlite (a sweep run) or the shared default database. */
  db?: 'own' | 'default';
  /** Steps with layer analyses: `all` of them (normlab analyze) or only the `cheap` ones (training's analyze_every). */
  analyses?: { steps: number[]; kind: 'all' | 'cheap' };
}

/** Block b's gradient norm at diagnostic step s of a fake run: distinct per run, block and step. */
const gradAt = (r: FakeRun, s: number, b: number) => (r.seed + 1) * 0.1 * b + s / 100;
const varAt = (r: FakeRun, s: number, b: number) => (r.norm === 'pre' ? b * b : 1) * (1 + s / 10);

/** A runs folder holding fake finished/diverged runs with known metrics. */
function fakeRuns(runs: FakeRun[]): string {
  const dir = join(tempDir('normlab-report-'), 'runs');
  for (const r of runs) {
    const layers = r.layers ?? 2;
    // mix_alpha 0.5 for every run: a 2-block Mix-LN needs it (one Post-LN block), and the same value everywhere splits no row.
    const config = resolveRunConfig({ name: r.id, model: { preset: 'nano', n_layers: layers, norm: r.norm, mix_alpha: 0.5 }, train: { seed: r.seed, steps: 20 } }, 'test');
    const store = RunStore.open(r.db === 'default' ? join(dir, 'normlab.sqlite') : join(dir, r.id, 'run.sqlite'));
    store.createRun({
      id: r.id, name: r.id, sweep: r.sweep === undefined ? 's' : r.sweep, config, configHash: r.id, seed: r.seed,
      backend: 'wasm', totalSteps: 20, versions: {}, runDir: join(dir, r.id),
    });
    const steps = [5, 10, 15, 20];
    store.writeMetrics({
      scalars: [
        ...Array.from({ length: 20 }, (_, i) => ({ runId: r.id, step: i + 1, name: 'train/loss', value: 5 - i * 0.1 })),
        { runId: r.id, step: 10, name: 'val/ppl', value: r.ppl * 2 },
        { runId: r.id, step: 20, name: 'val/ppl', value: r.ppl },
        { runId: r.id, step: 20, name: 'val/loss', value: Math.log(r.ppl) },
      ],
      layers: steps.flatMap((s) => Array.from({ length: layers }, (_, b) => [
        { runId: r.id, step: s, name: 'grad_norm', layer: b + 1, value: gradAt(r, s, b + 1) },
        { runId: r.id, step: s, name: 'output_var', layer: b + 1, value: varAt(r, s, b + 1) },
      ]).flat()),
      params: [{ runId: r.id, step: 5, name: 'grad_norm', param: 'model.layers.0.mlp.up_proj.weight', value: 0.5 }],
    });
    store.heartbeat(r.id, r.status === 'diverged' ? 12 : 20);
    store.setStatus(r.id, r.status ?? 'finished', r.status === 'diverged' ? { divergedStep: 12, error: 'loss is NaN at step 12' } : {});
    store.close();
    if (r.analyses) writeAnalyses(store.file, r, layers);
  }
  return dir;
}

/** Known analysis values, distinct per run, step and position. */
const angularAt = (r: FakeRun, s: number, i: number, n: number) => (i + n) / 100 + s / 1000 + r.seed / 10_000;
const dropAt = (r: FakeRun, s: number, b: number) => (b - 2) * 0.01 + s / 1000 + r.seed / 10_000;
const hiddenVarAt = (r: FakeRun, s: number, l: number) => (r.norm === 'pre' ? (l + 1) ** 2 : 1) * (1 + s / 10);

/** One sample set for every fake analysis (test/analysis-sets.test.ts tests several). */
const TEST_SET = { key: 'validation first 8 (packed) seq 16 data 0123456789abcdef', backend: 'cpu', precision: 'fp32' };

function writeAnalyses(file: string, r: FakeRun, layers: number): void {
  const analyses = AnalysisStore.open(file);
  for (const s of r.analyses!.steps) {
    const blocks = Array.from({ length: layers }, (_, k) => k + 1);
    analyses.write(r.id, s, 'angular', TEST_SET, blocks.flatMap((n) => Array.from({ length: layers - n + 1 }, (_, i) => row(i, angularAt(r, s, i, n), { n }))));
    analyses.write(r.id, s, 'variance', TEST_SET, [0, ...blocks].map((l) => row(l, hiddenVarAt(r, s, l))));
    analyses.write(r.id, s, 'max_abs', TEST_SET, blocks.map((b) => row(b, 10 * b + s)));
    analyses.write(r.id, s, 'cosine', TEST_SET, blocks.map((b) => row(b, 1 - b / 100)));
    if (r.analyses!.kind === 'cheap') continue;
    analyses.write(r.id, s, 'loss', TEST_SET, [row(0, 2.5)]);
    analyses.write(r.id, s, 'layer_drop', TEST_SET, blocks.map((b) => row(b, dropAt(r, s, b))));
    analyses.write(r.id, s, 'layer_drop_ppl', TEST_SET, blocks.map((b) => row(b, Math.exp(2.5 + dropAt(r, s, b)))));
    analyses.write(r.id, s, 'gradnorm', TEST_SET, blocks.map((b) => row(b, b / 10)));
  }
  analyses.close();
}

const STUDY: FakeRun[] = [
  { id: 'pre-0', norm: 'pre', seed: 0, ppl: 10 },
  { id: 'pre-1', norm: 'pre', seed: 1, ppl: 12 },
  { id: 'post-0', norm: 'post', seed: 0, ppl: 20 },
  { id: 'post-1', norm: 'post', seed: 1, ppl: 24, db: 'default', sweep: 's' },
  { id: 'mix-0', norm: 'mix', seed: 0, ppl: 15 },
  { id: 'mix-1', norm: 'mix', seed: 1, ppl: 999, status: 'diverged' },
  { id: 'pre-big', norm: 'pre', seed: 0, layers: 6, ppl: 8 },
  { id: 'other', norm: 'pre', seed: 0, ppl: 50, sweep: null, db: 'default' },
];

function studyFacts(filter: { sweep?: string } = { sweep: 's' }) {
  const gathered = gatherRuns(fakeRuns(STUDY), filter);
  return { facts: runFacts(gathered.runs), gathered };
}

test('the report gathers the default database and every run\'s own database; --sweep keeps that sweep\'s runs', () => {
  const dir = fakeRuns(STUDY);
  const all = gatherRuns(dir);
  assert.deepEqual(all.runs.map((r) => r.record.id).sort(), STUDY.map((r) => r.id).sort());
  all.close();
  const sweep = gatherRuns(dir, { sweep: 's' });
  assert.deepEqual(sweep.runs.map((r) => r.record.id).sort(), STUDY.filter((r) => r.id !== 'other').map((r) => r.id).sort());
  sweep.close();
});

test('headline: rows are strategies in the papers\' order, columns sizes by parameters, cells mean ± std over seeds; diverged runs are counted, not averaged', () => {
  const { facts, gathered } = studyFacts();
  const t = headlineTable(facts);
  assert.deepEqual(t.columns, ['strategy', 'nano (2L d64)', '6L d64']);
  assert.deepEqual(t.rows.map((r) => r[0]), ['Post-LN', 'Pre-LN', 'Mix-LN']);
  const [post, pre, mix] = t.rows.map((r) => r.slice(1) as (Stat | null)[]);
  assert.deepEqual(post, [{ mean: 22, std: Math.sqrt(8), n: 2, diverged: 0, unfinished: 0 }, null]);
  assert.deepEqual(pre![0], { mean: 11, std: Math.sqrt(2), n: 2, diverged: 0, unfinished: 0 });
  assert.deepEqual(pre![1], { mean: 8, std: null, n: 1, diverged: 0, unfinished: 0 });
  assert.deepEqual(mix![0], { mean: 15, std: null, n: 1, diverged: 1, unfinished: 0 }, 'the diverged seed is not averaged in');
  assert.match(renderTable(t, 'md'), /\| Mix-LN \| 15\.00 \(n=1; 1 diverged\) \| — \|/);
  gathered.close();
});

test('the headline table carries the same numbers in all four formats', () => {
  const { facts, gathered } = studyFacts();
  const t = headlineTable(facts);
  const json = JSON.parse(renderTable(t, 'json')) as { rows: Record<string, Stat | string>[] };
  const csv = renderTable(t, 'csv').trim().split('\n').map((l) => l.split(','));
  const md = renderTable(t, 'md');
  const text = renderTable(t, 'table');
  assert.deepEqual(csv[0]!.slice(0, 3), ['strategy', 'nano (2L d64) mean', 'nano (2L d64) std']);
  json.rows.forEach((row, i) => {
    const stat = row['nano (2L d64)'] as Stat;
    const csvRow = csv[i + 1]!;
    assert.equal(csvRow[0], row.strategy);
    assert.equal(Number(csvRow[1]), stat.mean, 'csv keeps the full-precision mean');
    const shown = `${stat.mean!.toFixed(2)}${stat.std === null ? '' : ` ± ${stat.std.toFixed(2)}`}`;
    assert.ok(md.includes(shown), `md shows ${shown}`);
    assert.ok(text.includes(shown), `text shows ${shown}`);
  });
  gathered.close();
});

test('per-block tables hold the mean over seeds at the first and last diagnostic step', () => {
  const { facts, gathered } = studyFacts();
  const tables = layerTables(facts);
  const first = tables.find((t) => t.id === 'grad-norm-first-nano-2l-d64')!;
  assert.deepEqual(first.columns, ['block', 'Post-LN', 'Pre-LN', 'Mix-LN']);
  assert.equal(first.rows.length, 2);
  const pre = STUDY.filter((r) => r.norm === 'pre' && !r.layers && r.sweep !== null);
  for (let b = 1; b <= 2; b++) {
    const expected = (gradAt(pre[0]!, 5, b) + gradAt(pre[1]!, 5, b)) / 2;
    assert.ok(Math.abs((first.rows[b - 1]![2] as number) - expected) < 1e-12);
  }
  assert.match(first.note!, /step 5/);
  const last = tables.find((t) => t.id === 'output-var-last-nano-2l-d64')!;
  assert.equal(last.rows[1]![2], varAt(pre[0]!, 20, 2), 'Pre-LN last-block variance at step 20');
  // Mix-LN's diverged seed is left out at the end of training.
  assert.equal(last.rows[0]![3], varAt(STUDY[4]!, 20, 1));
  const profile = depthProfileTable(facts);
  const preRow = profile.rows.find((r) => r[0] === 'Pre-LN' && r[1] === 'nano (2L d64)')!;
  assert.equal(preRow[7], 4, 'output variance grows 4× from block 1 to block 2 in the fake Pre-LN');
  const startRatio = (gradAt(pre[0]!, 5, 1) + gradAt(pre[1]!, 5, 1)) / (gradAt(pre[0]!, 5, 2) + gradAt(pre[1]!, 5, 2));
  assert.ok(Math.abs((preRow[2] as number) - startRatio) < 1e-12, 'gradient norm of block 1 over block 2 at the start');
  const perRun = depthProfileRunsTable(facts).rows.find((r) => r[0] === 'pre-0')!;
  const ratio = (s: number) => gradAt(pre[0]!, s, 1) / gradAt(pre[0]!, s, 2);
  assert.deepEqual(perRun.slice(4, 8), [ratio(5), ratio(5), 5, ratio(20)], 'per run: start, smallest (at step 5), end');
  gathered.close();
});

test('figures are SVGs with a title, labelled axes and a legend, and render to PNG', async () => {
  const { facts, gathered } = studyFacts();
  const figs = figures(facts, 'Sweep s');
  assert.deepEqual(figs.map((f) => f.name), [
    'loss-nano-2l-d64', 'grad-norm-heatmap-nano-2l-d64', 'grad-norm-depth-nano-2l-d64', 'output-variance-depth-nano-2l-d64',
    'loss-6l-d64', 'grad-norm-heatmap-6l-d64', 'grad-norm-depth-6l-d64', 'output-variance-depth-6l-d64',
    'perplexity-vs-size',
  ]);
  const byName = new Map(figs.map((f) => [f.name, f.svg]));
  const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  const loss = texts(byName.get('loss-nano-2l-d64')!);
  assert.ok(loss.includes('step'));
  assert.ok(loss.includes('loss (nats per token) (log scale)'));
  assert.ok(loss.some((t) => t === 'Mix-LN seed 1 (diverged at 12)'));
  const variance = texts(byName.get('output-variance-depth-nano-2l-d64')!);
  assert.ok(variance.includes('block (1 = nearest the embedding)'));
  assert.ok(['Post-LN', 'Pre-LN', 'Mix-LN'].every((s) => variance.includes(s)), 'legend names each strategy');
  assert.ok(texts(byName.get('grad-norm-heatmap-nano-2l-d64')!).includes('gradient norm (L2) (log)'), 'the heatmap has a colour bar label');
  for (const f of figs) assert.match(f.svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="(\d+)" height="(\d+)"/);
  const png = await svgToPng(byName.get('perplexity-vs-size')!, 1);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  const width = Number(/width="(\d+)"/.exec(byName.get('perplexity-vs-size')!)![1]);
  assert.equal(png.readUInt32BE(16), width, 'PNG as wide as the SVG at zoom 1');
  gathered.close();
});

test('normlab report --out writes the document, SVG and PNG figures and a long CSV with every metric row', () => {
  const dir = fakeRuns(STUDY);
  const out = join(dir, '..', 'report');
  const r = runCli(['report', '--runs-dir', dir, '--sweep', 's', '--format', 'md', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(md, /^# Sweep s\n\n7 runs \(6 finished, 1 diverged\); backend wasm; tokenizer byte\./);
  assert.match(md, /!\[Output variance against depth\]\(figures\/output-variance-depth-nano-2l-d64\.svg\)/);
  for (const name of ['loss-nano-2l-d64', 'perplexity-vs-size']) {
    assert.ok(existsSync(join(out, 'figures', `${name}.svg`)));
    assert.ok(existsSync(join(out, 'figures', `${name}.png`)));
  }
  const csv = readFileSync(join(out, 'metrics.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'run,sweep,strategy,seed,kind,name,step,layer,n,param,value,sample_set');
  // Per run: 20 losses + 2 val/ppl + 1 val/loss, 4 steps × 2 metrics × blocks, 1 parameter row.
  const rowsPerRun = (layers: number) => 23 + 4 * 2 * layers + 1;
  assert.equal(csv.length - 1, 6 * rowsPerRun(2) + rowsPerRun(6));
  assert.ok(csv.includes('pre-0,s,pre,0,layer,output_var,20,2,,,12,'), 'a layer row: block 2 of Pre-LN at step 20, 4 × 3');
  assert.ok(csv.includes('pre-0,s,pre,0,param,grad_norm,5,,,model.layers.0.mlp.up_proj.weight,0.5,'));
});

test('normlab report prints every format to stdout, and says so when there is nothing to report', () => {
  const dir = fakeRuns(STUDY);
  const json = runCli(['report', '--runs-dir', dir, '--sweep', 's', '--format', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as { tables: { id: string; rows: Record<string, unknown>[] }[] };
  assert.deepEqual(doc.tables.map((t) => t.id).slice(0, 2), ['headline', 'depth-profile']);
  const csv = runCli(['report', '--runs-dir', dir, '--sweep', 's', '--format', 'csv']);
  assert.match(csv.stdout, /^# Final validation perplexity.*\nstrategy,nano \(2L d64\) mean,nano \(2L d64\) std,/);
  const none = runCli(['report', '--runs-dir', dir, '--sweep', 'absent']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no runs of sweep absent in /);
});

test('normlab runs lists status, progress, last loss and backend, filtered by sweep and status', () => {
  const dir = fakeRuns(STUDY);
  const all = runCli(['runs', '--runs-dir', dir]);
  assert.equal(all.code, 0, all.stderr);
  const lines = all.stdout.trim().split('\n');
  assert.match(lines[0]!, /^run\s+sweep\s+strategy\s+size\s+seed\s+status\s+step\s+train loss\s+val ppl\s+tok\/s\s+backend\s+heartbeat$/);
  assert.equal(lines.length, 1 + STUDY.length);
  assert.match(all.stdout, /mix-1\s+s\s+Mix-LN\s+nano\s+1\s+diverged@12\s+12\/20\s+3\.100\s+999\s+wasm/);
  const diverged = runCli(['runs', '--runs-dir', dir, '--status', 'diverged']).stdout.trim().split('\n');
  assert.deepEqual(diverged.slice(1).map((l) => l.split(/\s+/)[0]), ['mix-1']);
  const sweep = runCli(['runs', '--runs-dir', dir, '--sweep', 's']).stdout;
  assert.doesNotMatch(sweep, /^other /m);
});

test('normlab runs shows what tells runs apart: strategy, size (preset or d × L) and seed, and lr where it varies', () => {
  const dir = fakeRuns([
    { id: 'a', norm: 'pre', seed: 0, ppl: 10 },
    { id: 'b', norm: 'post', seed: 1, layers: 3, ppl: 10 },
  ]);
  const lines = runCli(['runs', '--runs-dir', dir]).stdout.trim().split('\n');
  assert.doesNotMatch(lines[0]!, /\blr\b|precision/, 'no lr column when every run has the same');
  assert.match(lines[1]!, /^a\s+s\s+Pre-LN\s+nano\s+0\s+finished/);
  assert.match(lines[2]!, /^b\s+s\s+Post-LN\s+d64×3L\s+1\s+finished/);
  const store = RunStore.open(join(dir, 'b', 'run.sqlite'));
  const b = store.getRun('b')!;
  store.close();
  const other = join(dir, 'c', 'run.sqlite');
  const c = RunStore.open(other);
  c.createRun({ ...b, id: 'c', name: 'c', config: { ...b.config, train: { ...b.config.train, lr: 1e-2 } } });
  c.close();
  const varied = runCli(['runs', '--runs-dir', dir]).stdout.trim().split('\n');
  assert.match(varied[0]!, /seed\s+lr\s+status/);
  assert.match(varied.find((l) => l.startsWith('c '))!, /\s1\s+0\.01\s+\S+\s+0\/20/, 'its lr, then its status');
});

test('a reader opens a store read-only and cannot write to it; a sealed store is a single file', () => {
  const dir = fakeRuns([{ id: 'pre-0', norm: 'pre', seed: 0, ppl: 10 }]);
  const file = join(dir, 'pre-0', 'run.sqlite');
  const writer = RunStore.open(file);
  writer.seal();
  writer.close();
  assert.deepEqual(['-wal', '-shm'].map((s) => existsSync(file + s)), [false, false], 'no WAL files beside a sealed store');
  const reader = RunStore.open(file, { readonly: true });
  assert.equal(reader.getRun('pre-0')?.status, 'finished');
  assert.throws(() => reader.heartbeat('pre-0', 1), /readonly/);
  reader.close();
  assert.throws(() => RunStore.open(join(dir, 'absent.sqlite'), { readonly: true }), /unable to open/);
  assert.equal(existsSync(join(dir, 'absent.sqlite')), false, 'a read-only open creates nothing');
});

/** Three blocks; Pre-LN fully analysed at steps 10 and 20, Post-LN only the cheap analyses (training's analyze_every). */
const ANALYSED: FakeRun[] = [
  { id: 'pre-0', norm: 'pre', seed: 0, layers: 3, ppl: 10, analyses: { steps: [10, 20], kind: 'all' } },
  { id: 'pre-1', norm: 'pre', seed: 1, layers: 3, ppl: 12, analyses: { steps: [10, 20], kind: 'all' } },
  { id: 'post-0', norm: 'post', seed: 0, layers: 3, ppl: 20, analyses: { steps: [20], kind: 'cheap' } },
  { id: 'post-1', norm: 'post', seed: 1, layers: 3, ppl: 22 },
];

const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

test('analysis figures: an angular heatmap panel per run with L(L+1)/2 cells, a layer-drop bar per block and strategy with a dot per seed, variance and max |h| against depth', () => {
  const gathered = gatherRuns(fakeRuns(ANALYSED), { sweep: 's' });
  const facts = runFacts(gathered.runs);
  const figs = new Map(analysisFigures(facts, 'Sweep s').map((f) => [f.name, f.svg]));
  assert.deepEqual([...figs.keys()], ['angular-distance', 'layer-drop', 'hidden-variance-depth', 'max-activation-depth']);

  const angular = figs.get('angular-distance')!;
  assert.equal(angular.match(/<use href="#cell"/g)?.length, 3 * 6, 'three analysed runs, pairs (i, n) with i + n ≤ 3');
  const a = texts(angular);
  assert.ok(a.includes('Angular distance d(hᵢ, hᵢ₊ₙ) between hidden states (Gromov et al.)'), 'title');
  assert.ok(a.includes('i: first hidden state hᵢ (0 = embedding output)') && a.includes('n: blocks spanned'), 'axis titles');
  assert.ok(a.includes('angular distance arccos(cos)/π'), 'colour bar label');
  assert.deepEqual(a.filter((t) => /, seed \d$/.test(t!)), ['Post-LN, seed 0', 'Pre-LN, seed 0', 'Pre-LN, seed 1'], 'one panel per analysed run, none for post-1');
  assert.ok(a.some((t) => t!.includes('checkpoint step 20')), 'the latest analysed step by default');

  const drop = figs.get('layer-drop')!;
  assert.equal(drop.match(/<rect class="bar"/g)?.length, 3, 'one bar per block for the one strategy with layer drop');
  assert.equal(drop.match(/<circle class="point"/g)?.length, 3 * 2, 'a dot per block and seed');
  const d = texts(drop);
  assert.ok(d.includes('Pre-LN (mean of 2)') && !d.includes('Post-LN'), 'legend: only strategies with layer drop');
  assert.ok(d.includes('block removed (1 = nearest the embedding)'));
  assert.ok(d.includes('Δ val. loss (nats/token) (symlog, linear within ±0.001)'));
  assert.deepEqual(['1', '2', '3'].map((b) => d.includes(b)), [true, true, true], 'a label per block');

  const variance = texts(figs.get('hidden-variance-depth')!);
  assert.ok(variance.includes('ℓ: blocks applied (h_ℓ; 0 = embedding output)'));
  assert.ok(variance.includes('Pre-LN') && variance.includes('Post-LN'), 'strategies side by side');
  assert.ok(texts(figs.get('max-activation-depth')!).includes('max |h_ℓ| over tokens and channels (log scale)'));

  const cheapOnly = analysisFigures(facts.filter((f) => f.strategy === 'post'), 'Sweep s').map((f) => f.name);
  assert.deepEqual(cheapOnly, ['angular-distance', 'hidden-variance-depth', 'max-activation-depth'], 'no layer-drop figure without layer-drop rows');
  gathered.close();
});

test('analysis tables hold the latest analysed step by default and the asked step with analysisStep', () => {
  const gathered = gatherRuns(fakeRuns(ANALYSED), { sweep: 's' });
  const [pre0, pre1] = ANALYSED;
  for (const step of [undefined, 10]) {
    const s = step ?? 20;
    const facts = runFacts(gathered.runs, step === undefined ? {} : { analysisStep: step });
    const tables = new Map(analysisLayerTables(facts).map((t) => [t.id, t]));
    const angular = tables.get('angular-adjacent')!;
    assert.deepEqual(angular.columns, ['block', 'Post-LN', 'Pre-LN'].filter((c) => step === undefined || c !== 'Post-LN'));
    const preCol = angular.columns.indexOf('Pre-LN');
    assert.ok(Math.abs((angular.rows[2]![preCol] as number) - (angularAt(pre0!, s, 2, 1) + angularAt(pre1!, s, 2, 1)) / 2) < 1e-12, `d(h_2, h_3) at step ${s}, mean over seeds`);
    assert.match(angular.note!, new RegExp(`checkpoint step ${s}; sample set ${TEST_SET.key.replace(/[()]/g, '\\$&')}\\.`));
    const variance = tables.get('hidden-variance')!;
    assert.deepEqual(variance.rows.map((r) => r[0]), [0, 1, 2, 3], 'h_0 … h_3');
    assert.equal(variance.rows[3]![variance.columns.indexOf('Pre-LN')], hiddenVarAt(pre0!, s, 3));
    const drop = tables.get('layer-drop')!;
    assert.deepEqual(drop.columns, ['block', 'Pre-LN'], 'only strategies with layer drop');
    const perRun = analysisRunsTable(facts).rows.find((r) => r[0] === 'pre-0')!;
    assert.equal(perRun[4], s, 'step');
    assert.equal(perRun[10], 1, 'block 1 is the cheapest to drop');
    assert.equal(perRun[11], dropAt(pre0!, s, 1));
  }
  gathered.close();
});

test('without analyses the report has no analysis figures, tables or section', () => {
  const { facts, gathered } = studyFacts();
  const report = buildReport(facts, 'Sweep s');
  assert.deepEqual([report.analysisFigures, report.analysisTables], [[], []]);
  assert.doesNotMatch(renderReport(report, 'md', 'svg'), /Layer analyses|angular/i);
  assert.doesNotMatch(renderReport(report, 'json'), /analysis-runs/);
  gathered.close();
});

test('normlab report --out shows the analyses: figures, md section, per-table CSVs and analysis rows in the long CSV; --step picks the step', () => {
  const dir = fakeRuns(ANALYSED);
  const out = join(dir, '..', 'report');
  const r = runCli(['report', '--runs-dir', dir, '--sweep', 's', '--format', 'md', '--out', out, '--figures', 'svg']);
  assert.equal(r.code, 0, r.stderr);
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(md, /## Layer analyses\n[\s\S]*### Layer analyses per run[\s\S]*!\[Angular distance between hidden states\]\(figures\/angular-distance\.svg\)[\s\S]*## Per-block tables/);
  assert.deepEqual(readdirSync(join(out, 'figures')).filter((f) => /angular|layer-drop|hidden|max-act/.test(f)).sort(),
    ['angular-distance.svg', 'hidden-variance-depth.svg', 'layer-drop.svg', 'max-activation-depth.svg']);
  const csv = readFileSync(join(out, 'metrics.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'run,sweep,strategy,seed,kind,name,step,layer,n,param,value,sample_set');
  assert.ok(csv.includes(`pre-1,s,pre,1,analysis,angular,10,1,2,,${angularAt(ANALYSED[1]!, 10, 1, 2)},${TEST_SET.key}`), 'an angular row: h_1 to h_3 at step 10');
  assert.ok(csv.includes(`pre-0,s,pre,0,analysis,layer_drop,20,3,,,${dropAt(ANALYSED[0]!, 20, 3)},${TEST_SET.key}`));
  assert.ok(csv.includes('pre-0,s,pre,0,layer,output_var,20,2,,,12,'), 'metric rows keep their place, with an empty n');
  // Pre-LN: 2 steps × (6 angular + 4 variance + 3 × 3 max/cos/drop + 3 drop ppl + 3 grad + 1 loss); Post-LN seed 0: 6 + 4 + 3 + 3.
  assert.equal(csv.filter((l) => l.includes(',analysis,')).length, 2 * 2 * (6 + 4 + 3 * 5 + 1) + 16);

  const csvOut = join(dir, '..', 'csv');
  assert.equal(runCli(['report', '--runs-dir', dir, '--sweep', 's', '--format', 'csv', '--out', csvOut, '--figures', 'none', '--step', '10']).code, 0);
  const runs = readFileSync(join(csvOut, 'analysis-runs.csv'), 'utf8').trim().split('\n');
  assert.deepEqual(runs.slice(1).map((l) => l.split(',').slice(0, 5).join(',')), ['pre-0,Pre-LN,3L d64,0,10', 'pre-1,Pre-LN,3L d64,1,10'], 'only the runs analysed at step 10, at step 10');
  assert.ok(existsSync(join(csvOut, 'layer-drop.csv')));

  const none = runCli(['report', '--runs-dir', dir, '--sweep', 's', '--step', '7']);
  assert.equal(none.code, 0);
  assert.match(none.stderr, /no run has layer analyses at step 7/);
  assert.doesNotMatch(none.stdout, /Layer analyses per run/);
});
