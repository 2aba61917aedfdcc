// The report's figures, each legible on its own: loss curves, a block × step
// heatmap of gradient norms, gradient norm and output variance against depth,
// and perplexity against model size.
import { groupProfile, perplexityStat, slug } from './build.ts';
import { orderedGroups, orderedSizes, STRATEGY_COLOURS, type RunFacts, type Size } from './facts.ts';
import { envelope, HEAT_COLUMNS, heatBins, PLOT_COLUMNS, pointsCaption, stepBins, type Envelope, type HeatBins, type StepBins } from './reduce.ts';
import { ema, LOSS_SMOOTHING } from './smooth.ts';
import { dotPlot, heatmap, linePlot, type DotGroup, type Series } from './svg.ts';

export interface Figure {
  /** File name without extension. */
  name: string;
  title: string;
  svg: string;
  /** What the figure summarises, e.g. how many stored points went into it. */
  caption?: string;
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

export function figures(facts: RunFacts[], title: string, smoothing = LOSS_SMOOTHING): Figure[] {
  const sizes = orderedSizes(facts);
  const perSize = sizes.flatMap((size) => {
    const here = facts.filter((f) => f.size.label === size.label);
    const suffix = sizes.length > 1 ? `-${slug(size.label)}` : '';
    const at = `${title} — ${size.label}`;
    const grads = gradBins(here);
    return [
      { name: `loss${suffix}`, title: `Loss curves${sizes.length > 1 ? `, ${size.label}` : ''}`, ...lossFigure(here, at, smoothing) },
      { name: `grad-norm-heatmap${suffix}`, title: 'Gradient norm by block and step', ...gradHeatmap(grads, at, 'mean') },
      ...(needsMaxPanel(here) ? [{ name: `grad-norm-max-heatmap${suffix}`, title: 'Largest gradient norm by block and step bucket', ...gradHeatmap(grads, at, 'max') }] : []),
      { name: `grad-norm-depth${suffix}`, title: 'Gradient norm against depth', svg: gradDepth(here, at), caption: profileCaption(here, 'gradNorm') },
      { name: `output-variance-depth${suffix}`, title: 'Output variance against depth', svg: varianceDepth(here, at), caption: profileCaption(here, 'outputVar') },
    ];
  });
  // One size: a size axis would stack every strategy on one vertical line; compare strategies instead.
  const perplexity = sizes.length === 1
    ? { name: 'perplexity-by-strategy', title: 'Perplexity by strategy', svg: perplexityDots(facts, `${title} — ${sizes[0]!.label}`) }
    : { name: 'perplexity-vs-size', title: 'Perplexity against model size', svg: perplexityVsSize(facts, sizes, title) };
  return [...perSize, perplexity];
}

/**
 * The training loss of each run, raw: one bucket per pixel column, its mean
 * over a min–max band; with `smoothing` > 0 the raw line is faint and the EMA
 * of every step is drawn over it. Validation loss as open circles.
 */
export function lossSeries(facts: RunFacts[], smoothing: number): { series: Series[]; points: number; bins: StepBins } {
  const style = styles(facts);
  const seeds = [...new Set(facts.map((f) => f.seed))].sort((a, b) => a - b);
  const ordered = orderedGroups(facts).flatMap((g) => facts.filter((f) => f.group === g).sort((a, b) => a.seed - b.seed));
  const read = (f: RunFacts, name: string) => f.source.store.scalarColumns(f.id, name);
  // Loss is logged from step 1 to at most the run's length: one bucket grid for every run of the figure.
  const bins = stepBins(1, facts.reduce((last, f) => Math.max(last, f.totalSteps, f.step), 1), PLOT_COLUMNS);
  let points = 0;
  const series: Series[] = ordered.flatMap((f) => {
    const train = read(f, 'train/loss');
    const loss = envelope(train.steps, train.values, bins);
    const valColumns = read(f, 'val/loss');
    const val = envelope(valColumns.steps, valColumns.values, bins);
    points += loss.points + val.points;
    const s = style.get(f.group)!;
    const end = f.status === 'diverged' ? ` (diverged at ${f.divergedStep ?? f.step})` : '';
    // Seeds of one row share its colour and differ in dash.
    const line = { label: `${f.group} seed ${f.seed}${end}`, color: s.color, ...dashFor(seeds.indexOf(f.seed)) };
    const raw: Series = { ...line, points: meanPoints(loss), ...(hasSpread(loss) && { band: { x: loss.x, lo: loss.min, hi: loss.max } }) };
    const val_: Series = { label: `${line.label} val`, color: s.color, noLine: true, noLegend: true, points: meanPoints(val) };
    if (smoothing <= 0) return [raw, val_];
    // Smoothed over every step, then reduced like the raw line (reduce.ts: never smooth bucket means).
    const smooth = envelope(train.steps, ema(train.values, smoothing), bins);
    return [{ ...raw, noLegend: true, width: 1, opacity: 0.35 }, { ...line, points: meanPoints(smooth) }, val_];
  });
  return { series, points, bins };
}

function lossFigure(facts: RunFacts[], title: string, smoothing: number): { svg: string; caption: string } {
  const { series, points, bins } = lossSeries(facts, smoothing);
  const perBucket = bins.width > 1 ? `; each point the mean of up to ${bins.width} steps, the band their min–max` : '';
  const what = smoothing > 0
    ? `Training loss: raw (faint) and its EMA ${smoothing} over every step; validation loss (circles)`
    : 'Training loss (raw) and validation loss (circles)';
  return {
    svg: linePlot({ title: what, subtitle: title, x: { label: 'step', integer: true }, y: { label: 'loss (nats per token)', log: true }, series }),
    caption: `${pointsCaption(points)} in ${facts.length} run${facts.length === 1 ? '' : 's'}${perBucket}.`,
  };
}

const meanPoints = (e: Envelope) => Array.from(e.x, (x, i) => ({ x, y: e.mean[i]! }));
const hasSpread = (e: Envelope) => e.count.some((c) => c > 1);

/** A second heatmap with each bucket's largest value, once buckets hold several steps (a spike averaged away shows there). */
function needsMaxPanel(facts: RunFacts[]): boolean {
  return facts.some((f) => f.gradNorm.steps > HEAT_COLUMNS);
}

/** Each run's gradient norms binned into step buckets in SQL, once for both heatmaps. */
function gradBins(facts: RunFacts[]): { run: RunFacts; heat: HeatBins }[] {
  return orderedGroups(facts).flatMap((g) => facts.filter((f) => f.group === g).sort((a, b) => a.seed - b.seed)).map((run) => {
    const p = run.gradNorm;
    const bins = stepBins(p.firstStep ?? 0, p.lastStep ?? 0, HEAT_COLUMNS);
    return { run, heat: heatBins(bins, run.size.layers, p.steps ? run.source.store.layerBuckets(run.id, 'grad_norm', bins) : []) };
  });
}

function gradHeatmap(runs: { run: RunFacts; heat: HeatBins }[], title: string, pick: 'mean' | 'max'): { svg: string; caption: string } {
  // One panel per run, a row per strategy and a column per seed: an average would hide a seed whose gradients vanished.
  const seeds = new Set(runs.map((r) => r.run.seed)).size;
  const points = runs.reduce((n, r) => n + r.heat.points, 0);
  const width = runs.reduce((w, r) => Math.max(w, r.heat.bins.width), 1);
  const panels = runs.map(({ run, heat }) => ({
    title: `${run.group}, seed ${run.seed}${run.status === 'diverged' ? ' (diverged)' : ''}`,
    xs: heat.steps,
    ys: Array.from({ length: run.size.layers }, (_, b) => b + 1),
    values: heat[pick],
  }));
  const what = pick === 'max' ? 'largest' : 'mean';
  return {
    svg: heatmap({
      title: `Gradient norm of each block over training${pick === 'max' ? ' (largest per step bucket)' : ''}`, subtitle: title,
      x: { label: width > 1 ? 'step (bucket start)' : 'step' }, y: { label: 'block (1 = nearest the embedding)' },
      colour: { label: `${pick === 'max' ? 'largest ' : ''}gradient norm (L2)`, log: true }, panels, columns: Math.min(seeds, 4),
    }),
    caption: `${pointsCaption(points)}${width > 1 ? `; each cell the ${what} of up to ${width} steps` : ''}.`,
  };
}

/** How much a depth profile stands for: blocks × runs at one step each, of how many recorded. */
function profileCaption(facts: RunFacts[], metric: 'gradNorm' | 'outputVar'): string {
  const steps = facts.reduce((n, f) => n + f[metric].steps, 0);
  return `Per-block values of ${facts.length} run${facts.length === 1 ? '' : 's'} at single diagnostic steps, means over seeds; ${pointsCaption(steps * (facts[0]?.size.layers ?? 0))} recorded in all.`;
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

/** Every finished run's final validation perplexity (one marker per seed), and the mean ± std of each strategy. */
function perplexityDots(facts: RunFacts[], title: string): string {
  const style = styles(facts);
  const groups: DotGroup[] = orderedGroups(facts).map((g) => {
    const runs = facts.filter((f) => f.group === g);
    const stat = perplexityStat(runs)!;
    const values = runs.filter((r) => r.status === 'finished' && r.valPpl !== undefined && Number.isFinite(r.valPpl)).map((r) => r.valPpl!);
    const note = [stat.diverged ? `${stat.diverged} diverged` : '', stat.unfinished ? `${stat.unfinished} unfinished` : ''].filter(Boolean).join(', ');
    return { label: g, color: style.get(g)!.color, values, mean: stat.mean, std: stat.std, ...(note && { note }) };
  });
  return dotPlot({
    title: 'Final validation perplexity: each seed (circles), mean (bar) ± std', subtitle: title,
    y: { label: 'validation perplexity', log: true }, groups,
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
