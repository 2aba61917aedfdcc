// The report's figures, each legible on its own: loss curves, a block × step
// heatmap of gradient norms, gradient norm and output variance against depth,
// and perplexity against model size.
import { groupProfile, perplexityStat, slug } from './build.ts';
import { orderedGroups, orderedSizes, STRATEGY_COLOURS, type RunFacts, type Size } from './facts.ts';
import { heatmap, linePlot, type Series } from './svg.ts';

export interface Figure {
  /** File name without extension. */
  name: string;
  title: string;
  svg: string;
}

const DASHES = [undefined, '6 4', '2 3', '10 3 2 3'];

function dashFor(k: number): { dash?: string } {
  const dash = DASHES[k % DASHES.length];
  return dash ? { dash } : {};
}

/** Colour by strategy; a second row of the same strategy (another mix_alpha, say) gets a dash. */
export function styles(facts: RunFacts[]): Map<string, { color: string; dash?: string }> {
  const out = new Map<string, { color: string; dash?: string }>();
  const perStrategy = new Map<string, number>();
  for (const g of orderedGroups(facts)) {
    const strategy = facts.find((f) => f.group === g)!.strategy;
    const k = perStrategy.get(strategy) ?? 0;
    perStrategy.set(strategy, k + 1);
    const dash = DASHES[k % DASHES.length];
    out.set(g, { color: STRATEGY_COLOURS[strategy] ?? '#333333', ...(dash && { dash }) });
  }
  return out;
}

export function figures(facts: RunFacts[], title: string): Figure[] {
  const sizes = orderedSizes(facts);
  const perSize = sizes.flatMap((size) => {
    const here = facts.filter((f) => f.size.label === size.label);
    const suffix = sizes.length > 1 ? `-${slug(size.label)}` : '';
    const at = `${title} — ${size.label}`;
    return [
      { name: `loss${suffix}`, title: `Loss curves${sizes.length > 1 ? `, ${size.label}` : ''}`, svg: lossFigure(here, at) },
      { name: `grad-norm-heatmap${suffix}`, title: 'Gradient norm by block and step', svg: gradHeatmap(here, at) },
      { name: `grad-norm-depth${suffix}`, title: 'Gradient norm against depth', svg: gradDepth(here, at) },
      { name: `output-variance-depth${suffix}`, title: 'Output variance against depth', svg: varianceDepth(here, at) },
    ];
  });
  return [...perSize, { name: 'perplexity-vs-size', title: 'Perplexity against model size', svg: perplexityVsSize(facts, sizes, title) }];
}

/** Exponential moving average, so curves of batch-8 runs can be told apart. */
function smooth(values: number[], beta = 0.9): number[] {
  let m = NaN;
  return values.map((v) => (m = Number.isFinite(m) ? beta * m + (1 - beta) * v : v));
}

function lossFigure(facts: RunFacts[], title: string): string {
  const style = styles(facts);
  const seeds = [...new Set(facts.map((f) => f.seed))].sort((a, b) => a - b);
  const ordered = orderedGroups(facts).flatMap((g) => facts.filter((f) => f.group === g).sort((a, b) => a.seed - b.seed));
  const series: Series[] = ordered.flatMap((f) => {
    const train = f.source.store.scalarSeries(f.id, 'train/loss');
    const ema = smooth(train.map((p) => p.value));
    const s = style.get(f.group)!;
    const val = f.source.store.scalarSeries(f.id, 'val/loss');
    const end = f.status === 'diverged' ? ` (diverged at ${f.divergedStep ?? f.step})` : '';
    return [
      // Seeds of one row share its colour and differ in dash.
      { label: `${f.group} seed ${f.seed}${end}`, color: s.color, ...dashFor(seeds.indexOf(f.seed)), points: train.map((p, i) => ({ x: p.step, y: ema[i]! })) },
      { label: `${f.group} seed ${f.seed} val`, color: s.color, noLine: true, noLegend: true, points: val.map((p) => ({ x: p.step, y: p.value })) },
    ];
  });
  return linePlot({
    title: 'Training loss (EMA 0.9) and validation loss (dots)', subtitle: title,
    x: { label: 'step', integer: true }, y: { label: 'loss (nats per token)', log: true }, series,
  });
}

function gradHeatmap(facts: RunFacts[], title: string): string {
  // One panel per run, a row per strategy and a column per seed: an average would hide a seed whose gradients vanished.
  const seeds = [...new Set(facts.map((f) => f.seed))].sort((a, b) => a - b);
  const panels = orderedGroups(facts).flatMap((g) => facts.filter((f) => f.group === g).sort((a, b) => a.seed - b.seed)).map((run) => ({
    title: `${run.group}, seed ${run.seed}${run.status === 'diverged' ? ' (diverged)' : ''}`,
    xs: run.gradNorm.steps,
    ys: Array.from({ length: run.size.layers }, (_, b) => b + 1),
    values: Array.from({ length: run.size.layers }, (_, b) => run.gradNorm.values.map((row) => row[b]!)),
  }));
  return heatmap({
    title: 'Gradient norm of each block over training', subtitle: title,
    x: { label: 'step' }, y: { label: 'block (1 = nearest the embedding)' },
    colour: { label: 'gradient norm (L2)', log: true }, panels, columns: Math.min(seeds.length, 4),
  });
}

function depthSeries(facts: RunFacts[], metric: 'gradNorm' | 'outputVar', picks: ('first' | 'last')[]): Series[] {
  const style = styles(facts);
  return orderedGroups(facts).flatMap((g) => picks.flatMap((pick) => {
    const p = groupProfile(facts.filter((f) => f.group === g), metric, pick);
    if (!p) return [];
    const s = style.get(g)!;
    const label = picks.length > 1 ? `${g}, ${pick === 'first' ? 'start' : 'end'}` : g;
    return [{ label, color: s.color, ...(pick === 'last' && picks.length > 1 ? { dash: '6 4' } : s.dash ? { dash: s.dash } : {}), markers: true, points: p.map((y, b) => ({ x: b + 1, y })) }];
  }));
}

function gradDepth(facts: RunFacts[], title: string): string {
  return linePlot({
    title: 'Gradient norm by block: first (solid) and last (dashed) diagnostic step', subtitle: title,
    x: { label: 'block (1 = nearest the embedding)', integer: true }, y: { label: 'gradient norm (L2)', log: true },
    series: depthSeries(facts, 'gradNorm', ['first', 'last']),
  });
}

function varianceDepth(facts: RunFacts[], title: string): string {
  return linePlot({
    title: 'Output variance of each block at the end of training', subtitle: title,
    x: { label: 'block (1 = nearest the embedding)', integer: true }, y: { label: 'output variance', log: true },
    series: depthSeries(facts, 'outputVar', ['last']),
  });
}

function perplexityVsSize(facts: RunFacts[], sizes: Size[], title: string): string {
  const style = styles(facts);
  const series: Series[] = orderedGroups(facts).map((g) => ({
    label: g, ...style.get(g)!, markers: true,
    points: sizes.flatMap((size) => {
      const s = perplexityStat(facts.filter((f) => f.group === g && f.size.label === size.label));
      return s?.mean != null ? [{ x: size.blockParams, y: s.mean, ...(s.std !== null && { err: s.std }) }] : [];
    }),
  }));
  return linePlot({
    title: 'Final validation perplexity against model size (± std over seeds)', subtitle: `${title} — sizes: ${sizes.map((s) => s.label).join(', ')}`,
    x: { label: 'parameters in the blocks', log: true }, y: { label: 'validation perplexity', log: true }, series,
  });
}
