// The layer analyses as figures, strategies side by side: an angular-distance
// heatmap per run (rows n, columns i, as in Gromov et al. and Mix-LN), a
// layer-drop bar chart, and variance and max |activation| against depth.
// A figure is made only when some run has its analysis: no empty figures.
import { meanProfile, setsText, stepsText } from './analysis-tables.ts';
import type { RunAnalyses } from './analyses.ts';
import { slug } from './build.ts';
import { orderedGroups, orderedSizes, type RunFacts } from './facts.ts';
import { styles, type Figure } from './figures.ts';
import { barChart, heatmap, linePlot, type Series } from './svg.ts';

export function analysisFigures(facts: RunFacts[], title: string): Figure[] {
  const sizes = orderedSizes(facts);
  return sizes.flatMap((size) => {
    const here = facts.filter((f) => f.size.label === size.label);
    const suffix = sizes.length > 1 ? `-${slug(size.label)}` : '';
    const at = `${title} — ${size.label}`;
    const made: (Figure | undefined)[] = [
      withRuns(here, (a) => a.angular, (runs) => ({ name: `angular-distance${suffix}`, title: 'Angular distance between hidden states', svg: angularHeatmap(runs, at), caption: setCaption(runs) })),
      withRuns(here, (a) => a.layerDrop, (runs) => ({ name: `layer-drop${suffix}`, title: 'Loss increase when one block is removed', svg: layerDropChart(runs, at), caption: setCaption(runs) })),
      withRuns(here, (a) => a.variance, (runs) => ({ name: `hidden-variance-depth${suffix}`, title: 'Hidden-state variance against depth', svg: varianceChart(runs, at), caption: setCaption(runs) })),
      withRuns(here, (a) => a.maxAbs, (runs) => ({ name: `max-activation-depth${suffix}`, title: 'Largest activation against depth', svg: maxAbsChart(runs, at), caption: setCaption(runs) })),
    ];
    return made.filter((f) => f !== undefined);
  });
}

/** What the values were computed on, under the figure. */
const setCaption = (runs: RunFacts[]) => `Computed on ${setsText(runs)}.`;

function withRuns(facts: RunFacts[], has: (a: RunAnalyses) => unknown, make: (runs: RunFacts[]) => Figure): Figure | undefined {
  const runs = facts.filter((f) => has(f.analyses) !== undefined);
  return runs.length ? make(runs) : undefined;
}

/** Runs in the papers' strategy order, seeds ascending. */
function ordered(facts: RunFacts[]): RunFacts[] {
  return orderedGroups(facts).flatMap((g) => facts.filter((f) => f.group === g).sort((a, b) => a.seed - b.seed));
}

function angularHeatmap(runs: RunFacts[], title: string): string {
  const seeds = new Set(runs.map((r) => r.seed)).size;
  const steps = stepsText(runs.map((r) => r.analyses.angular?.step));
  const panels = ordered(runs).map((run) => {
    const L = run.size.layers;
    const m = run.analyses.angular!.matrix;
    return {
      title: `${run.group}, seed ${run.seed}`,
      xs: Array.from({ length: L }, (_, i) => i),
      ys: Array.from({ length: L }, (_, n) => n + 1),
      // Pairs with i + n > L do not exist: no cell (the upper-right triangle stays empty).
      values: Array.from({ length: L }, (_, n) => Array.from({ length: L }, (__, i) => (i <= L - (n + 1) ? m[n]![i] ?? NaN : null))),
    };
  });
  return heatmap({
    title: 'Angular distance d(hᵢ, hᵢ₊ₙ) between hidden states (Gromov et al.)',
    subtitle: `${title}; checkpoint ${steps}; last real token of each sequence; ${setsText(runs)}`,
    x: { label: 'i: first hidden state hᵢ (0 = embedding output)' }, y: { label: 'n: blocks spanned' },
    colour: { label: 'angular distance arccos(cos)/π' }, panels, columns: seeds > 1 ? Math.min(seeds, 4) : Math.min(panels.length, 3),
  });
}

function layerDropChart(runs: RunFacts[], title: string): string {
  const style = styles(runs);
  const L = runs.reduce((l, r) => Math.max(l, r.size.layers), 0);
  const groups = orderedGroups(runs).map((g) => {
    const members = runs.filter((r) => r.group === g);
    const means = meanProfile(members, (a) => a.layerDrop?.values)!;
    return {
      label: members.length > 1 ? `${g} (mean of ${members.length})` : g,
      color: style.get(g)!.color,
      values: Array.from({ length: L }, (_, b) => means[b] ?? null),
      ...(members.length > 1 && { points: Array.from({ length: L }, (_, b) => members.map((r) => r.analyses.layerDrop!.values[b]!)) }),
    };
  });
  return barChart({
    title: 'Loss increase when one block is replaced by the identity (layer drop)',
    subtitle: `${title}; checkpoint ${stepsText(runs.map((r) => r.analyses.layerDrop?.step))}; ${setsText(runs)}`,
    x: { label: 'block removed (1 = nearest the embedding)' }, y: { label: 'Δ val. loss (nats/token)', symlog: 1e-3 },
    categories: Array.from({ length: L }, (_, b) => String(b + 1)), groups, pointsLabel: 'single runs (seeds)',
  });
}

/** One line per strategy: the mean over its analysed runs, at x = from, from + 1, … */
function depthLines(runs: RunFacts[], pick: (a: RunAnalyses) => number[] | undefined, from: number): Series[] {
  const style = styles(runs);
  return orderedGroups(runs).flatMap((g) => {
    const p = meanProfile(runs.filter((r) => r.group === g), pick);
    return p ? [{ label: g, ...style.get(g)!, markers: true, points: p.map((y, k) => ({ x: k + from, y })) }] : [];
  });
}

function varianceChart(runs: RunFacts[], title: string): string {
  return linePlot({
    title: 'Variance of the hidden state after each block (mean over seeds)',
    subtitle: `${title}; checkpoint ${stepsText(runs.map((r) => r.analyses.variance?.step))}; ${setsText(runs)}`,
    x: { label: 'ℓ: blocks applied (h_ℓ; 0 = embedding output)', integer: true }, y: { label: 'variance of h_ℓ (over tokens × channels)', log: true },
    series: depthLines(runs, (a) => a.variance?.values, 0),
  });
}

function maxAbsChart(runs: RunFacts[], title: string): string {
  return linePlot({
    title: 'Largest absolute activation of each block\'s output (mean over seeds)',
    subtitle: `${title}; checkpoint ${stepsText(runs.map((r) => r.analyses.maxAbs?.step))}; ${setsText(runs)}`,
    x: { label: 'block ℓ (1 = nearest the embedding)', integer: true }, y: { label: 'max |h_ℓ| over tokens and channels', log: true },
    series: depthLines(runs, (a) => a.maxAbs?.values, 1),
  });
}
