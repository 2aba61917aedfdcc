// Figures that do not mislead: the raw training loss is always drawn (a
// smoothed line only over it), one model size gives a per-strategy dot plot
// with every seed, and markers are hollow or dodged so none hides another.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFacts } from '../src/report/facts.ts';
import { figures, lossSeries } from '../src/report/figures.ts';
import { gatherRuns } from '../src/report/gather.ts';
import { ema } from '../src/report/smooth.ts';
import { dodge } from '../src/report/svg.ts';
import { runCli } from './helpers/cli.ts';
import { lossAt, STUDY_RUNS, STUDY_STEPS, writeStudy } from './helpers/study.ts';

const runsDir = writeStudy();
const gathered = gatherRuns(runsDir);
const facts = runFacts(gathered.runs);
test.after(() => gathered.close());

const circles = (svg: string) => [...svg.matchAll(/<circle class="marker" cx="([\d.]+)" cy="([\d.]+)" r="([\d.]+)" fill="([^"]+)"/g)]
  .map((m) => ({ x: Number(m[1]), y: Number(m[2]), r: Number(m[3]), fill: m[4]! }));

test('the loss figure draws every run\'s raw loss, the EMA of every step only over it, validation as points', () => {
  const steps = Array.from({ length: STUDY_STEPS }, (_, i) => i + 1);
  for (const smoothing of [0.9, 0]) {
    const { series } = lossSeries(facts, smoothing);
    for (const run of STUDY_RUNS) {
      const mine = series.filter((s) => s.label.startsWith(facts.find((f) => f.id === run.id)!.group) && s.label.includes(`seed ${run.seed}`));
      const raw = steps.map((s) => lossAt(run, s));
      const lines = mine.filter((s) => !s.noLine);
      // The raw loss, step by step (NaN where the run diverged), is one of the lines.
      assert.ok(lines.some((s) => s.points.every((p, i) => Object.is(p.y, raw[i]) || Math.abs(p.y - raw[i]!) < 1e-12)), `${run.id}: raw loss drawn`);
      assert.equal(lines.length, smoothing > 0 ? 2 : 1);
      if (smoothing > 0) {
        const smooth = ema(raw, smoothing);
        assert.ok(lines.some((s) => s.points.every((p, i) => Object.is(p.y, smooth[i]) || Math.abs(p.y - smooth[i]!) < 1e-12)), `${run.id}: EMA over every step`);
        assert.ok(lines.some((s) => s.opacity !== undefined && s.opacity < 1), 'the raw line is faint beneath the smoothed one');
      }
      assert.ok(mine.some((s) => s.noLine && s.points.length === 2), `${run.id}: validation as points`);
    }
  }
  const svg = figures(facts, 'study')[0]!.svg;
  assert.match(svg, /Training loss: raw \(faint\) and its EMA 0\.9 over every step/);
});

test('one model size: perplexity as a per-strategy dot plot with every seed and the mean, not a size axis', () => {
  const figs = figures(facts, 'study');
  assert.ok(!figs.some((f) => f.name === 'perplexity-vs-size'));
  const svg = figs.find((f) => f.name === 'perplexity-by-strategy')!.svg;
  const dots = circles(svg);
  // Every finished run once (the diverged one has no result: said under its strategy instead).
  assert.equal(dots.length, STUDY_RUNS.filter((r) => !r.diverged).length);
  assert.match(svg, />1 diverged</);
  assert.equal([...svg.matchAll(/class="mean"/g)].length, 3);
  const xs = new Set(dots.map((d) => Math.round(d.x / 50)));
  assert.ok(xs.size >= 3, 'strategies side by side, not on one vertical line');
  // The two seeds of a strategy (perplexities 1 % apart) are dodged: no marker covers another's centre.
  for (const [i, a] of dots.entries()) for (const b of dots.slice(i + 1)) assert.ok(Math.hypot(a.x - b.x, a.y - b.y) >= a.r * 2, `markers at ${a.x},${a.y} and ${b.x},${b.y} overlap`);
});

test('markers are hollow: one drawn over another leaves it visible', () => {
  const depth = figures(facts, 'study').find((f) => f.name.startsWith('grad-norm-depth'))!.svg;
  const dots = circles(depth);
  assert.ok(dots.length > 0);
  assert.ok(dots.every((d) => d.fill === 'white'));
});

test('dodge: markers that would overlap go side by side, far ones stay centred', () => {
  assert.deepEqual(dodge([100, 100, 104, 150, 100], 10), [0, 1, -1, 0, 2]);
});

test('report --smoothing outside [0, 1) is refused before anything is written', () => {
  const r = runCli(['report', '--runs-dir', runsDir, '--smoothing', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--smoothing: expected an EMA weight in \[0, 1\)/);
});
