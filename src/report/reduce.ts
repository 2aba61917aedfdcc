// The reduction step between the store and every figure (SVG, PNG, HTML): a
// 100,000-step series becomes at most one bucket per pixel column, and a
// block × step heatmap at most ~200 step columns, so a figure's size does not
// grow with the run. Buckets keep the min and max beside the mean, so a loss
// spike or a divergence stays visible after reduction.
//
// Smoothing (an EMA, say) must be computed on the full series BEFORE it is
// reduced here: smoothing bucket means would weigh buckets, not steps.

/** Pixel columns of the line plots' drawing area (svg.ts): one bucket each at most. */
export const PLOT_COLUMNS = 492;
/** Step columns of a heatmap panel at most. */
export const HEAT_COLUMNS = 200;

/**
 * Buckets of whole steps: bucket k holds steps x0 + k·width … x0 + (k+1)·width − 1.
 * Integer widths make SQL (store.layerBins) and JS bucket a step the same way.
 */
export interface StepBins {
  x0: number;
  width: number;
  count: number;
}

/** The fewest buckets of whole steps, at most `maxBins`, covering steps x0 … x1. */
export function stepBins(x0: number, x1: number, maxBins: number): StepBins {
  const span = Math.max(1, x1 - x0 + 1);
  const width = Math.max(1, Math.ceil(span / Math.max(1, maxBins)));
  return { x0, width, count: Math.ceil(span / width) };
}

export function binOf(b: StepBins, step: number): number {
  return Math.min(b.count - 1, Math.max(0, Math.floor((step - b.x0) / b.width)));
}

/**
 * A reduced line: per non-empty bucket, the mean step (where the point is
 * drawn), the mean, min and max of its finite values and how many steps it
 * holds. `points` is how many points went in (the caption's figure).
 */
export interface Envelope {
  x: Float64Array;
  mean: Float64Array;
  min: Float64Array;
  max: Float64Array;
  count: Uint32Array;
  points: number;
}

/**
 * Reduces (steps, values) (steps ascending) to at most `bins.count` buckets.
 * Non-finite values (a diverged run's NaN) count as points but not in the
 * mean/min/max; a bucket with only those has mean NaN, so the line breaks there.
 */
export function envelope(steps: ArrayLike<number>, values: ArrayLike<number>, bins: StepBins): Envelope {
  const n = bins.count;
  const sx = new Float64Array(n), sum = new Float64Array(n), finite = new Uint32Array(n), count = new Uint32Array(n);
  const min = new Float64Array(n).fill(Infinity), max = new Float64Array(n).fill(-Infinity);
  for (let i = 0; i < steps.length; i++) {
    const k = binOf(bins, steps[i]!);
    const v = values[i]!;
    count[k]!++;
    sx[k]! += steps[i]!;
    if (!Number.isFinite(v)) continue;
    finite[k]!++;
    sum[k]! += v;
    if (v < min[k]!) min[k] = v;
    if (v > max[k]!) max[k] = v;
  }
  const keep: number[] = [];
  for (let k = 0; k < n; k++) if (count[k]! > 0) keep.push(k);
  const pick = (f: (k: number) => number) => Float64Array.from(keep, f);
  return {
    x: pick((k) => sx[k]! / count[k]!),
    mean: pick((k) => (finite[k] ? sum[k]! / finite[k]! : NaN)),
    min: pick((k) => (finite[k] ? min[k]! : NaN)),
    max: pick((k) => (finite[k] ? max[k]! : NaN)),
    count: Uint32Array.from(keep, (k) => count[k]!),
    points: steps.length,
  };
}

/** One bucket of one row of a binned heatmap, as the store's SQL aggregate returns it. */
export interface BinCell {
  bin: number;
  /** 1-based row (block). */
  row: number;
  mean: number;
  max: number;
  count: number;
}

/** A binned block × step heatmap: mean[row][bin] and max[row][bin], NaN where a bucket is empty. */
export interface HeatBins {
  bins: StepBins;
  /** Each bucket's first step, for axis labels. */
  steps: number[];
  mean: number[][];
  max: number[][];
  points: number;
}

/** Lays the store's per-bucket aggregates out as rows × buckets, leaving out buckets no row has a value in. */
export function heatBins(bins: StepBins, rows: number, cells: Iterable<BinCell>): HeatBins {
  const mean = Array.from({ length: rows }, () => new Array<number>(bins.count).fill(NaN));
  const max = Array.from({ length: rows }, () => new Array<number>(bins.count).fill(NaN));
  const used = new Uint8Array(bins.count);
  let points = 0;
  for (const c of cells) {
    if (c.row < 1 || c.row > rows || c.bin < 0 || c.bin >= bins.count) continue;
    mean[c.row - 1]![c.bin] = c.mean;
    max[c.row - 1]![c.bin] = c.max;
    used[c.bin] = 1;
    points += c.count;
  }
  const keep = [...used.keys()].filter((k) => used[k]);
  return {
    bins,
    steps: keep.map((k) => bins.x0 + k * bins.width),
    mean: mean.map((r) => keep.map((k) => r[k]!)),
    max: max.map((r) => keep.map((k) => r[k]!)),
    points,
  };
}

/** min and max of the finite values, by a loop (a spread over 100,000 values overflows the stack). */
export function extent(values: Iterable<number>, keep: (v: number) => boolean = () => true): [number, number] | undefined {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v) || !keep(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : undefined;
}

/** "12,345 points" for captions. */
export function pointsCaption(n: number): string {
  return `${n.toLocaleString('en-US')} point${n === 1 ? '' : 's'}`;
}
