import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveRunConfig } from '../src/config/load.ts';
import { headlineTable } from '../src/report/build.ts';
import { bestLrTable, pairedAtBestLrTable, pairedTable } from '../src/report/compare.ts';
import { runFacts, settingLabel, type RunFacts } from '../src/report/facts.ts';
import { gatherRuns } from '../src/report/gather.ts';
import { mixedCodeWarning, provenanceTable } from '../src/report/provenance.ts';
import { buildReport, renderReport } from '../src/report/report.ts';
import { pairedSummary, regularizedBeta, studentTCdf, studentTQuantile } from '../src/report/stats.ts';
import { renderTable, type Cell, type Interval, type Stat, type Table } from '../src/report/tables.ts';
import { RunStore } from '../src/store/store.ts';
import { runCli, tempDir } from './helpers/cli.ts';

const close = (a: number, b: number, tol: number, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);

test('the t quantile matches published tables', () => {
  // Student's t table, two-sided 95% (and others), to the digits printed there.
  const known: [number, number, number][] = [
    [0.975, 1, 12.7062], [0.975, 2, 4.3027], [0.975, 4, 2.7764], [0.975, 9, 2.2622], [0.975, 29, 2.0452],
    [0.95, 10, 1.8125], [0.995, 5, 4.0321], [0.9995, 1, 636.6192], [0.975, 1e6, 1.9600],
  ];
  for (const [p, df, t] of known) close(studentTQuantile(p, df), t, 1e-4, `t(${p}, ${df})`);
  assert.equal(studentTQuantile(0.025, 4), -studentTQuantile(0.975, 4), 'symmetric');
  assert.equal(studentTQuantile(0.5, 3), 0);
});

test('the t quantile agrees with the closed forms for 1 and 2 degrees of freedom and inverts the CDF', () => {
  for (const p of [0.55, 0.7, 0.9, 0.975, 0.999]) {
    close(studentTQuantile(p, 1), Math.tan(Math.PI * (p - 0.5)), 1e-9 * Math.tan(Math.PI * (p - 0.5)), 'Cauchy');
    close(studentTQuantile(p, 2), (2 * p - 1) / Math.sqrt(2 * p * (1 - p)), 1e-10, 'df 2');
    for (const df of [1, 3, 7.5, 40]) close(studentTCdf(studentTQuantile(p, df), df), p, 1e-12, `cdf(q(${p}, ${df}))`);
  }
  close(regularizedBeta(0.3, 2, 3), 0.3483, 1e-12, 'I_0.3(2, 3) = 0.3483 exactly');
  assert.throws(() => studentTQuantile(1, 3), /p in \(0, 1\)/);
  assert.throws(() => studentTQuantile(0.9, 0), /degrees of freedom/);
});

test('paired differences: mean, sd, t interval and wins', () => {
  const p = pairedSummary([-0.1, -0.12, -0.08, -0.11, -0.09]);
  assert.equal(p.n, 5);
  assert.equal(p.wins, 5);
  close(p.mean!, -0.1, 1e-15);
  close(p.sd!, Math.sqrt(0.001 / 4), 1e-15);
  const half = 2.776445105197799 * Math.sqrt(0.001 / 4) / Math.sqrt(5);
  close(p.ci![0], -0.1 - half, 1e-12);
  close(p.ci![1], -0.1 + half, 1e-12);
  assert.deepEqual(pairedSummary([0.2]), { n: 1, mean: 0.2, sd: null, ci: null, wins: 0 }, 'one pair: no interval');
  assert.deepEqual(pairedSummary([]), { n: 0, mean: null, sd: null, ci: null, wins: 0 });
});

interface FakeRun {
  norm: string;
  seed: number;
  loss: number;
  lr?: number;
  diverged?: boolean;
  versions?: Record<string, string>;
}

/** A runs folder of finished (or diverged) runs whose final validation loss is `loss`. */
function fakeRuns(runs: FakeRun[]): string {
  const dir = join(tempDir('normlab-stats-'), 'runs');
  for (const r of runs) {
    const id = `${r.norm}-${r.lr ?? 1e-3}-${r.seed}`;
    // mix_alpha 0.5 everywhere: a 2-block Mix-LN needs it, and one value splits no row.
    const config = resolveRunConfig({ name: id, model: { preset: 'nano', n_layers: 2, norm: r.norm, mix_alpha: 0.5 }, train: { seed: r.seed, steps: 20, lr: r.lr ?? 1e-3 } }, 'test');
    const store = RunStore.open(join(dir, id, 'run.sqlite'));
    store.createRun({ id, name: id, sweep: 's', config, configHash: id, seed: r.seed, backend: 'torch', totalSteps: 20, versions: r.versions ?? {}, runDir: join(dir, id) });
    store.writeMetrics({
      scalars: [
        { runId: id, step: 20, name: 'val/loss', value: r.loss },
        { runId: id, step: 20, name: 'val/ppl', value: Math.exp(r.loss) },
      ],
    });
    store.heartbeat(id, r.diverged ? 12 : 20);
    store.setStatus(id, r.diverged ? 'diverged' : 'finished', r.diverged ? { divergedStep: 12, error: 'loss is NaN at step 12' } : {});
    store.close();
  }
  return dir;
}

function factsOf(runs: FakeRun[]): { facts: RunFacts[]; close(): void } {
  const gathered = gatherRuns(fakeRuns(runs));
  return { facts: runFacts(gathered.runs), close: () => gathered.close() };
}

const col = (t: Table, row: Cell[], name: string) => row[t.columns.indexOf(name)] ?? null;
const rowOf = (t: Table, label: string) => {
  const row = t.rows.find((r) => r[0] === label);
  assert.ok(row, `a row ${label} in ${t.id}: ${t.rows.map((r) => r[0]).join(', ')}`);
  return row;
};

/** Half-width of the t interval of a mean of independent values: what an unpaired reading would use. */
function unpairedInterval(values: number[]): [number, number] {
  const n = values.length, m = values.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / (n - 1));
  const half = studentTQuantile(0.975, n - 1) * sd / Math.sqrt(n);
  return [m - half, m + half];
}

// Seeds differ a lot (±0.4 nats), Mix-LN is better by 0.05 ± 0.01 on every seed.
const SEED_EFFECT = [-0.4, -0.2, 0, 0.2, 0.4];
const MIX_GAIN = [0.05, 0.06, 0.04, 0.05, 0.055];
const PAIRED_STUDY: FakeRun[] = SEED_EFFECT.flatMap((e, seed) => [
  { norm: 'pre', seed, loss: 3 + e },
  { norm: 'mix', seed, loss: 3 + e - MIX_GAIN[seed]! },
]);

test('pairing by seed finds a difference the unpaired means ± spread hide: CI excludes 0, 5/5 wins', () => {
  const preLoss = PAIRED_STUDY.filter((r) => r.norm === 'pre').map((r) => r.loss);
  const mixLoss = PAIRED_STUDY.filter((r) => r.norm === 'mix').map((r) => r.loss);
  const [pre, mix] = [unpairedInterval(preLoss), unpairedInterval(mixLoss)];
  assert.ok(mix[1] > pre[0] && pre[1] > mix[0], 'unpaired, the intervals overlap: no conclusion');

  const { facts, close: done } = factsOf(PAIRED_STUDY);
  const t = pairedTable(facts, 'pre')!;
  assert.equal(t.rows.length, 1, 'one strategy against the baseline');
  const row = rowOf(t, 'Mix-LN');
  assert.equal(col(t, row, 'baseline'), 'Pre-LN');
  assert.equal(col(t, row, 'pairs'), 5);
  close(col(t, row, 'mean Δ val loss') as number, -0.051, 1e-12);
  const ci = col(t, row, '95% CI of Δ') as Interval;
  assert.ok(ci.high < 0, `paired, the interval excludes 0: [${ci.low}, ${ci.high}]`);
  const p = pairedSummary(MIX_GAIN.map((g) => -g));
  close(ci.low, p.ci![0], 1e-12);
  close(ci.high, p.ci![1], 1e-12);
  assert.equal(col(t, row, 'wins'), '5/5');
  assert.equal((col(t, row, 'val ppl') as Stat).n, 5, 'ppl with the n behind it');
  assert.equal(col(t, row, 'not paired'), null);
  assert.doesNotMatch(t.note!, /WARNING/, 'one code version: no warning');
  assert.match(renderTable(t, 'md'), /\| Mix-LN \| nano \(2L d64\) \| Pre-LN \| 5 \| -0\.05100 \| [^|]+ \| \[-0\.06\d+, -0\.04\d+\] \| 5\/5 \|/);
  const csv = renderTable(t, 'csv').split('\n');
  assert.match(csv[0]!, /,95% CI of Δ low,95% CI of Δ high,wins,/, 'CSV: the interval as two columns');
  assert.ok(csv[1]!.includes(`,${ci.low},${ci.high},5/5,`));
  done();
});

test('a diverged run is counted and named, never paired nor averaged; one pair says n < 2', () => {
  const runs = PAIRED_STUDY.map((r) => (r.norm === 'mix' && r.seed === 2 ? { ...r, loss: NaN, diverged: true } : r));
  const { facts, close: done } = factsOf(runs);
  const t = pairedTable(facts, 'pre')!;
  const row = rowOf(t, 'Mix-LN');
  assert.equal(col(t, row, 'pairs'), 4);
  assert.equal(col(t, row, 'wins'), '4/4');
  close(col(t, row, 'mean Δ val loss') as number, -(0.05 + 0.06 + 0.05 + 0.055) / 4, 1e-12, 'seed 2 left out of the mean');
  assert.equal(col(t, row, 'not paired'), 'Mix-LN: diverged (s2); Pre-LN: no partner (s2)');
  const ppl = col(t, row, 'val ppl') as Stat;
  assert.deepEqual([ppl.n, ppl.diverged], [4, 1]);
  assert.match(renderTable(t, 'md'), /\(n=4; 1 diverged\)/);
  done();

  const one = factsOf(PAIRED_STUDY.filter((r) => r.seed === 0));
  const single = pairedTable(one.facts, 'pre')!;
  assert.equal(col(single, single.rows[0]!, '95% CI of Δ'), 'n < 2: no interval');
  one.close();
});

test('no baseline run: no paired table; --baseline picks another strategy', () => {
  const { facts, close: done } = factsOf(PAIRED_STUDY.filter((r) => r.norm === 'mix'));
  assert.equal(pairedTable(facts, 'pre'), undefined);
  done();
  const both = factsOf(PAIRED_STUDY);
  const t = pairedTable(both.facts, 'mix')!;
  const row = rowOf(t, 'Pre-LN');
  close(col(t, row, 'mean Δ val loss') as number, 0.051, 1e-12, 'the sign follows the baseline');
  assert.equal(col(t, row, 'wins'), '0/5');
  both.close();
});

// Pre-LN best at 2e-3, LNS at 4e-3 (Pre-LN's 8e-3 diverges on one seed though the other two are lowest).
const LR_STUDY: FakeRun[] = [0, 1, 2].flatMap((seed) => {
  const e = [0.3, -0.3, 0][seed]!;
  return [
    { norm: 'pre', lr: 1e-3, seed, loss: 3.2 + e }, { norm: 'pre', lr: 2e-3, seed, loss: 3.0 + e },
    { norm: 'pre', lr: 4e-3, seed, loss: 3.1 + e },
    seed === 1 ? { norm: 'pre', lr: 8e-3, seed, loss: NaN, diverged: true } : { norm: 'pre', lr: 8e-3, seed, loss: 2.5 + e },
    { norm: 'lns', lr: 1e-3, seed, loss: 3.3 + e }, { norm: 'lns', lr: 2e-3, seed, loss: 3.05 + e },
    { norm: 'lns', lr: 4e-3, seed, loss: 2.9 + e + 0.01 * seed }, { norm: 'lns', lr: 8e-3, seed, loss: 3.4 + e },
  ];
});

test('best lr: each strategy at its own lr, a diverged seed disqualifies an lr, and the comparison at those lrs', () => {
  const { facts, close: done } = factsOf(LR_STUDY);
  const best = bestLrTable(facts)!;
  assert.deepEqual(best.columns.slice(5), ['val loss at lr 0.001', 'val loss at lr 0.002', 'val loss at lr 0.004', 'val loss at lr 0.008']);
  const pre = rowOf(best, 'Pre-LN'), lns = rowOf(best, 'LNS');
  assert.equal(col(best, pre, 'best lr'), '0.002', 'not 8e-3, where a seed diverged');
  assert.equal(col(best, lns, 'best lr'), '0.004');
  close((col(best, pre, 'val loss at best lr') as Stat).mean!, 3.0, 1e-12);
  assert.equal((col(best, pre, 'val loss at lr 0.008') as Stat).diverged, 1);

  // Same lr: LNS loses to Pre-LN at 2e-3 (+0.05 on every seed)…
  const same = pairedTable(facts, 'pre')!;
  const at2 = rowOf(same, 'LNS lr=0.002');
  assert.equal(col(same, at2, 'baseline'), 'Pre-LN lr=0.002');
  assert.equal(col(same, at2, 'wins'), '0/3');
  // …each at its own best lr, LNS wins on every seed.
  const own = pairedAtBestLrTable(facts, 'pre')!;
  const row = rowOf(own, 'LNS lr=0.004');
  assert.equal(col(own, row, 'baseline'), 'Pre-LN lr=0.002');
  assert.equal(col(own, row, 'wins'), '3/3');
  close(col(own, row, 'mean Δ val loss') as number, -0.1 + 0.01, 1e-12);
  assert.ok((col(own, row, '95% CI of Δ') as Interval).high < 0);
  done();

  const fixed = factsOf(PAIRED_STUDY);
  assert.equal(bestLrTable(fixed.facts), undefined, 'one lr: no best-lr table');
  assert.equal(pairedAtBestLrTable(fixed.facts, 'pre'), undefined);
  fixed.close();
});

const V = (git: string, extra: Record<string, string> = {}) => ({
  normlab: '0.1.0', node: 'v22.0.0', backend: 'torch libtorch 2.5.1', precision: 'fp32', host: 'Intel Xeon × 2; no GPU', git, ...extra,
});

test('mixed code versions are warned about in the comparisons, the headline and the summary; provenance lists them', () => {
  const runs = PAIRED_STUDY.map((r) => ({ ...r, versions: V(r.norm === 'mix' && r.seed === 4 ? 'bbbbbbbbbbbb' : 'aaaaaaaaaaaa') }));
  const { facts, close: done } = factsOf(runs);
  const warning = /WARNING: these runs mix code versions \(normlab 0\.1\.0 @ aaaaaaaaaaaa: 9 runs; normlab 0\.1\.0 @ bbbbbbbbbbbb: 1 run\)/;
  assert.match(pairedTable(facts, 'pre')!.note!, warning);
  assert.match(headlineTable(facts).note!, warning);
  const report = buildReport(facts, 'mixed');
  assert.match(report.summary, warning);
  const prov = provenanceTable(facts);
  assert.deepEqual(prov.columns, ['normlab', 'git', 'backend', 'precision', 'host', 'node', 'runs', 'which']);
  assert.deepEqual(prov.rows.map((r) => [r[1], r[6]]), [['aaaaaaaaaaaa', 9], ['bbbbbbbbbbbb', 1]]);
  assert.equal(prov.rows[1]![7], 'mix-0.001-4');
  assert.equal(prov.rows[0]![4], 'Intel Xeon × 2; no GPU');
  const runsTable = report.tables.find((t) => t.id === 'runs')!;
  assert.equal(col(runsTable, runsTable.rows.find((r) => r[0] === 'mix-0.001-4')!, 'code'), '0.1.0 @ bbbbbbbbbbbb');
  assert.match(renderReport(report, 'md'), /## Provenance\n\n### Provenance/);
  done();

  // One code version: no warning; a different normlab version alone is one.
  const same = factsOf(PAIRED_STUDY.map((r) => ({ ...r, versions: V('aaaaaaaaaaaa') })));
  assert.equal(mixedCodeWarning(same.facts), undefined);
  assert.doesNotMatch(buildReport(same.facts, 'same').summary, /WARNING/);
  same.close();
  const normlab = factsOf(PAIRED_STUDY.map((r) => ({ ...r, versions: V('unknown', { normlab: r.seed ? '0.1.0' : '0.2.0' }) })));
  assert.match(mixedCodeWarning(normlab.facts)!, /normlab 0\.2\.0 @ unknown: 2 runs/);
  normlab.close();
});

test('runs with no recorded commit warn only beside runs that have one; a dirty tree is noted', () => {
  const old = factsOf(PAIRED_STUDY);
  assert.equal(mixedCodeWarning(old.facts), undefined, 'all unknown: nothing shows a difference');
  assert.deepEqual(provenanceTable(old.facts).rows.map((r) => r.slice(0, 2)), [['unknown', 'unknown']]);
  old.close();
  const some = factsOf(PAIRED_STUDY.map((r) => (r.seed === 0 ? r : { ...r, versions: V('aaaaaaaaaaaa-dirty') })));
  assert.match(mixedCodeWarning(some.facts)!, /@ unknown: 2 runs/);
  assert.match(buildReport(some.facts, 'dirty').summary, /8 of 10 runs ran from a working tree with uncommitted changes/);
  some.close();
});

test('normlab report shows the comparisons in every format, takes --baseline, and warns on stderr', () => {
  const dir = fakeRuns([...LR_STUDY.map((r) => ({ ...r, versions: V(r.norm === 'lns' ? 'cccccccccccc' : 'aaaaaaaaaaaa') }))]);
  const md = runCli(['report', '--runs-dir', dir]);
  assert.equal(md.code, 0, md.stderr);
  assert.match(md.stderr, /normlab: warning: these runs mix code versions/);
  assert.match(md.stdout, /Paired difference in final validation loss against Pre-LN, by seed/);
  assert.match(md.stdout, /Each strategy at its own best learning rate/);
  assert.match(md.stdout, /LNS lr=0\.004\s+nano \(2L d64\)\s+Pre-LN lr=0\.002\s+3/);

  const other = runCli(['report', '--runs-dir', dir, '--baseline', 'lns', '--format', 'md']);
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stdout, /### Paired difference in final validation loss against LNS, by seed/);
  const bad = runCli(['report', '--runs-dir', dir, '--baseline', 'post']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--baseline: no run has strategy "post"; these runs have lns, pre/);

  const out = join(dir, '..', 'csv');
  assert.equal(runCli(['report', '--runs-dir', dir, '--format', 'csv', '--out', out, '--figures', 'none', '--long-csv', 'none']).code, 0);
  for (const id of ['paired', 'best-lr', 'paired-best-lr', 'provenance']) assert.ok(existsSync(join(out, `${id}.csv`)), `${id}.csv`);
  assert.match(readFileSync(join(out, 'paired-best-lr.csv'), 'utf8'), /^strategy,size,baseline,pairs,mean Δ val loss,sd of Δ,95% CI of Δ low,95% CI of Δ high,wins,/);

  const html = join(dir, '..', 'html');
  assert.equal(runCli(['report', '--runs-dir', dir, '--format', 'html', '--out', html]).code, 0);
  const page = readFileSync(join(html, 'report.html'), 'utf8');
  assert.match(page, /<section id="comparisons">[\s\S]*<h3 id="table-paired-best-lr">[\s\S]*<td>LNS lr=0\.004<\/td>/);
  assert.match(page, /<p class="warning">WARNING: these runs mix code versions/);
  assert.match(page, /<section id="provenance">[\s\S]*<td>cccccccccccc<\/td>/);
});

test('a setting some runs lack is labelled as absent, not "undefined"', () => {
  assert.equal(settingLabel({ 'data.source': undefined, 'train.lr': 0.002 }), 'source=— lr=0.002');
});
