// What the HTML report embeds: every run's record and config, its loss curves
// (smoothed on the full series, then reduced by reduce.ts to one point per
// pixel column), its per-block diagnostics as block × step grids (step buckets)
// and its layer analyses — plain JSON the page draws from, whatever the run's length.
import { setLabel } from '../../analyze/sample-set.ts';
import type { RunFacts } from '../facts.ts';
import { flatten, orderedGroups, orderedSizes, strategyLabel } from '../facts.ts';
import { styles } from '../figures.ts';
import { provenanceOf, type Provenance } from '../provenance.ts';
import { envelope, HEAT_COLUMNS, heatBins, PLOT_COLUMNS, stepBins } from '../reduce.ts';
import { ema } from '../smooth.ts';

/** Smoothing levels the page's slider steps through (EMA weight of the past; 0 = raw). */
export const SMOOTHING = [0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999];

export interface PageRun {
  id: string;
  group: string;
  strategy: string;
  size: string;
  layers: number;
  seed: number;
  status: string;
  step: number;
  totalSteps: number;
  divergedStep: number | null;
  error: string | null;
  backend: string;
  /** What produced it (normlab, git, backend versions, precision, host). */
  provenance: Provenance;
  valLoss: number | null;
  valPpl: number | null;
  color: string;
  dash: boolean;
  /** The resolved config, flattened to dotted keys. */
  config: Record<string, unknown>;
}

/** A run's training loss, one line per smoothing level over the same (reduced) steps, and its validation points. */
export interface PageLoss {
  x: number[];
  /** levels[k]: the EMA at SMOOTHING[k] of the full series, then reduced; levels[0] is the raw loss. */
  levels: (number | null)[][];
  /** Raw loss min and max per reduced point; absent when nothing was reduced. */
  lo?: (number | null)[];
  hi?: (number | null)[];
  stepsPerPoint: number;
  val: { x: number[]; y: (number | null)[] };
}

/** Block × step values of one run: values[block − 1][column], columns at `steps`. */
export interface PageGrid {
  steps: number[];
  values: (number | null)[][];
  stepsPerColumn: number;
}

export interface PageAnalyses {
  /** matrix[n − 1][i]: angular distance between h_i and h_{i+n}. */
  angular?: { step: number; matrix: (number | null)[][] };
  layerDrop?: { step: number; values: (number | null)[] };
  /** h_0 … h_L. */
  variance?: { step: number; values: (number | null)[] };
  /** Blocks 1 … L. */
  maxAbs?: { step: number; values: (number | null)[] };
  /** What these were computed on (src/analyze/sample-set.ts). */
  sampleSet?: string;
}

export interface PageData {
  title: string;
  summary: string;
  generated: string;
  sizes: string[];
  groups: string[];
  smoothing: number[];
  runs: PageRun[];
  /** Config keys whose value differs between runs: the runs table's extra columns. */
  varying: string[];
  loss: PageLoss[];
  gradNorm: PageGrid[];
  outputVar: PageGrid[];
  analyses: PageAnalyses[];
}

/** Five significant digits: the page shows four; JSON stays small. NaN and ±inf become null (a gap). */
export function compact(v: number): number | null {
  return Number.isFinite(v) ? Number(v.toPrecision(5)) : null;
}

const compactAll = (vs: ArrayLike<number>) => Array.from(vs, compact);

export function pageData(facts: RunFacts[], title: string, summary: string): PageData {
  const ordered = orderedGroups(facts).flatMap((g) => facts.filter((f) => f.group === g).sort((a, b) => a.seed - b.seed));
  const style = styles(ordered);
  const configs = ordered.map((f) => flatten(f.source.record.config));
  return {
    title, summary, generated: new Date().toISOString(),
    sizes: orderedSizes(ordered).map((s) => s.label),
    groups: orderedGroups(ordered),
    smoothing: SMOOTHING,
    runs: ordered.map((f, i) => ({
      id: f.id, group: f.group, strategy: strategyLabel(f.strategy), size: f.size.label, layers: f.size.layers, seed: f.seed,
      status: f.status, step: f.step, totalSteps: f.totalSteps, divergedStep: f.divergedStep, error: f.source.record.error,
      backend: f.backend, provenance: provenanceOf(f),
      // A diverged run's last evaluation predates its divergence: not its result.
      valLoss: f.status === 'diverged' ? null : compact(f.valLoss ?? NaN),
      valPpl: f.status === 'diverged' ? null : compact(f.valPpl ?? NaN),
      color: style.get(f.group)!.color, dash: style.get(f.group)!.dash !== undefined,
      config: configs[i]!,
    })),
    varying: varyingKeys(configs),
    loss: ordered.map(lossOf),
    gradNorm: ordered.map((f) => gridOf(f, 'grad_norm')),
    outputVar: ordered.map((f) => gridOf(f, 'output_var')),
    analyses: ordered.map(analysesOf),
  };
}

function lossOf(f: RunFacts): PageLoss {
  const { steps, values } = f.source.store.scalarColumns(f.id, 'train/loss');
  const bins = stepBins(steps[0] ?? 1, steps.at(-1) ?? 1, PLOT_COLUMNS);
  // Smooth the full series, then reduce: smoothing reduced points would weigh buckets, not steps.
  const lines = SMOOTHING.map((beta) => envelope(steps, beta === 0 ? values : ema(values, beta), bins));
  const raw = lines[0]!;
  const val = f.source.store.scalarColumns(f.id, 'val/loss');
  return {
    x: Array.from(raw.x, (x) => Number(x.toPrecision(7))),
    levels: lines.map((l) => compactAll(l.mean)),
    ...(bins.width > 1 && { lo: compactAll(raw.min), hi: compactAll(raw.max) }),
    stepsPerPoint: bins.width,
    val: { x: Array.from(val.steps), y: compactAll(val.values) },
  };
}

function gridOf(f: RunFacts, name: 'grad_norm' | 'output_var'): PageGrid {
  const span = f.source.store.layerSteps(f.id, name);
  if (!span) return { steps: [], values: [], stepsPerColumn: 1 };
  const bins = stepBins(span.first, span.last, HEAT_COLUMNS);
  const grid = heatBins(bins, f.size.layers, f.source.store.layerBuckets(f.id, name, bins));
  return { steps: grid.steps, values: grid.mean.map(compactAll), stepsPerColumn: bins.width };
}

function analysesOf(f: RunFacts): PageAnalyses {
  const a = f.analyses;
  return {
    ...(a.angular && { angular: { step: a.angular.step, matrix: a.angular.matrix.map(compactAll) } }),
    ...(a.layerDrop && { layerDrop: { step: a.layerDrop.step, values: compactAll(a.layerDrop.values) } }),
    ...(a.variance && { variance: { step: a.variance.step, values: compactAll(a.variance.values) } }),
    ...(a.maxAbs && { maxAbs: { step: a.maxAbs.step, values: compactAll(a.maxAbs.values) } }),
    ...(a.sampleSet !== undefined && { sampleSet: setLabel(a.sampleSet) }),
  };
}

/** Dotted keys whose values are not all equal (the output paths aside: they always differ). */
function varyingKeys(configs: Record<string, unknown>[]): string[] {
  const keys = [...new Set(configs.flatMap((c) => Object.keys(c)))].filter((k) => !k.startsWith('output.') && k !== 'name');
  return keys.filter((k) => new Set(configs.map((c) => JSON.stringify(c[k]))).size > 1);
}
