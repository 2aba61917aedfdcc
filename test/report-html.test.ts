import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveRunConfig } from '../src/config/load.ts';
import { runFacts } from '../src/report/facts.ts';
import { gatherRuns } from '../src/report/gather.ts';
import { pageData, SMOOTHING, type PageData } from '../src/report/html/data.ts';
import { ema } from '../src/report/smooth.ts';
import { PLOT_COLUMNS } from '../src/report/reduce.ts';
import { RunStore } from '../src/store/store.ts';
import { CHROMIUM, checkPages } from '../scripts/chromium.ts';
import { ROOT, runCli, tempDir } from './helpers/cli.ts';
import { DIAG_STEPS, gradAt, lossAt, STUDY_RUNS, STUDY_STEPS, writeStudy } from './helpers/study.ts';

const runsDir = writeStudy();
const out = tempDir('normlab-html-');
const page = join(out, 'report.html');

function embedded(html: string): PageData {
  const m = /<script type="application\/json" id="normlab-data">(.*?)<\/script>/s.exec(html);
  assert.ok(m, 'the page embeds its data');
  return JSON.parse(m[1]!) as PageData;
}

test('report --format html writes one self-contained page with the stored values', () => {
  const r = runCli(['report', '--runs-dir', runsDir, '--sweep', 's', '--format', 'html', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const html = readFileSync(page, 'utf8');
  // Nothing to fetch: no external scripts, styles, images or URLs at all.
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|<img[^>]+src=|https?:\/\//);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  const d = embedded(html);
  assert.equal(d.runs.length, STUDY_RUNS.length);
  const diverged = d.runs.find((x) => x.id === 's-post-1')!;
  assert.equal(diverged.status, 'diverged');
  assert.equal(diverged.valPpl, null, 'a diverged run has no result');
  for (const [i, run] of d.runs.entries()) {
    const study = STUDY_RUNS.find((s) => s.id === run.id)!;
    const steps = Array.from({ length: STUDY_STEPS }, (_, k) => k + 1);
    const raw = steps.map((s) => lossAt(study, s));
    const loss = d.loss[i]!;
    assert.deepEqual(loss.x, steps);
    // Level 0 is the raw loss (never only an EMA); the others the EMA of the full series.
    assert.equal(SMOOTHING[0], 0);
    loss.levels[0]!.forEach((v, k) => (Number.isFinite(raw[k]) ? assert.ok(Math.abs(v! - raw[k]!) < 1e-4) : assert.equal(v, null)));
    const smooth = ema(raw, 0.9);
    loss.levels[SMOOTHING.indexOf(0.9)]!.forEach((v, k) => (Number.isFinite(smooth[k]) ? assert.ok(Math.abs(v! - smooth[k]!) < 1e-4) : assert.equal(v, null)));
    assert.deepEqual(d.gradNorm[i]!.steps, DIAG_STEPS);
    d.gradNorm[i]!.values.forEach((row, b) => row.forEach((v, c) => assert.ok(Math.abs(v! - gradAt(study, DIAG_STEPS[c]!, b + 1)) < 1e-4)));
  }
  assert.ok(d.analyses[d.runs.findIndex((x) => x.id === 's-pre-0')]!.angular);
  assert.ok(d.varying.includes('model.norm') && d.varying.includes('train.seed'));
});

test('the EMA starts at the first value and steps over a NaN', () => {
  assert.deepEqual([...ema([2, 4, NaN, 4], 0.5)], [2, 3, NaN, 3.5]);
});

test('a 100,000-step run is smoothed in full, then reduced: no raw series in the page, the spike kept', () => {
  const dir = join(tempDir('normlab-html-long-'), 'runs');
  const store = RunStore.open(join(dir, 'long', 'run.sqlite'));
  const config = resolveRunConfig({ name: 'long', model: { preset: 'nano', n_layers: 2 }, train: { steps: 100_000 } }, 'test');
  store.createRun({ id: 'long', name: 'long', config, configHash: 'long', seed: 0, backend: 'wasm', totalSteps: 100_000, versions: {}, runDir: join(dir, 'long') });
  const loss = (s: number) => (s === 50_000 ? 9 : 3 + (s % 2));
  store.writeMetrics({
    scalars: Array.from({ length: 100_000 }, (_, i) => ({ runId: 'long', step: i + 1, name: 'train/loss', value: loss(i + 1) })),
    layers: Array.from({ length: 10_000 }, (_, i) => [1, 2].map((layer) => ({ runId: 'long', step: (i + 1) * 10, name: 'grad_norm', layer, value: layer }))).flat(),
  });
  store.setStatus('long', 'finished');
  store.close();
  const gathered = gatherRuns(dir);
  try {
    const d = pageData(runFacts(gathered.runs), 'long', '');
    const l = d.loss[0]!;
    assert.ok(l.x.length <= PLOT_COLUMNS && l.levels.every((y) => y.length === l.x.length), `${l.x.length} points`);
    assert.ok(l.stepsPerPoint > 1 && l.hi && l.lo);
    assert.equal(Math.max(...l.hi.map(Number)), 9, 'the one-step spike survives as the max of its bucket');
    assert.equal(Math.min(...l.lo.map(Number)), 3);
    // The heaviest smoothing is the EMA of every step (≈ 3.5 by the end), not of bucket means.
    assert.ok(Math.abs(l.levels.at(-1)!.at(-1)! - 3.5) < 0.01);
    assert.ok(d.gradNorm[0]!.steps.length <= 200 && d.gradNorm[0]!.stepsPerColumn > 1);
    assert.ok(JSON.stringify(d).length < 200_000, `${JSON.stringify(d).length} bytes of data`);
  } finally {
    gathered.close();
  }
});

test('the HTML report in headless Chromium: no errors or requests, every canvas drawn, a header click sorts, a run click highlights, the filter filters', { skip: CHROMIUM ? false : 'no Chromium (apt-get install chromium)' }, async () => {
  const study = existsSync(page) ? page : (runCli(['report', '--runs-dir', runsDir, '--format', 'html', '--out', out]), page);
  // The committed CPU-study page too: what a reader opens.
  const docs = join(ROOT, 'docs', 'cpu-study', 'report.html');
  const pages = [study, ...(existsSync(docs) ? [docs] : [])];
  const shots = pages.map((_, i) => join(out, `shot-${i}.png`));
  const results = await checkPages(pages, shots);
  for (const [i, r] of results.entries()) {
    const name = pages[i]!;
    assert.deepEqual(r.errors, [], `${name}: console errors`);
    assert.deepEqual(r.requests, [], `${name}: requests beyond the page`);
    assert.deepEqual(r.failed, [], `${name}: failed requests`);
    assert.ok(r.canvases.length >= 5, `${name}: ${r.canvases.length} canvases`);
    assert.deepEqual(r.canvases.filter((c) => !c.drawn), [], `${name}: blank canvases`);
    const values = r.sort.values.map((v) => (v === '—' ? Infinity : Number(v)));
    assert.deepEqual(values, [...values].sort((a, b) => a - b), `${name}: sorted by ${r.sort.header} after the click`);
    assert.notDeepEqual(r.sort.after, r.sort.before, `${name}: the click changed the order (${JSON.stringify(r.sort)})`);
    assert.deepEqual(r.picked.rows, [r.sort.after[0]], `${name}: the clicked run is highlighted`);
    assert.equal(r.picked.detail, r.sort.after[0], `${name}: and its config shown`);
    assert.ok(r.filtered.visible.length > 0 && r.filtered.visible.length < r.sort.after.length, `${name}: the filter ${r.filtered.filter} keeps some runs`);
    assert.ok(statSync(r.screenshot).size > 10_000);
    assert.deepEqual([...readFileSync(r.screenshot).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  }
  // The fixture page: the perplexity dot plot (one size), 6 runs × 2 heatmaps, 2 colour bars, loss, depth;
  // 2 angular maps, their colour bar, 3 analysis charts.
  assert.equal(results[0]!.canvases.length, 23);
  assert.deepEqual(results[0]!.filtered.visible.sort(), ['s-pre-0', 's-pre-1']);
});

test('docs/cpu-study/report.html stays under 5 MB', { skip: existsSync(join(ROOT, 'docs', 'cpu-study', 'report.html')) ? false : 'not written yet' }, () => {
  assert.ok(statSync(join(ROOT, 'docs', 'cpu-study', 'report.html')).size < 5 * 1024 * 1024);
});
