// Smoothing for loss curves, always of the full series (before reduce.ts
// buckets it), and always drawn over the raw series, never instead of it.

/** The smoothing figures use unless told otherwise (report --smoothing). */
export const LOSS_SMOOTHING = 0.9;

/** Exponential moving average started at the first value (no bias towards 0); a NaN is passed over and kept. */
export function ema(values: ArrayLike<number>, beta: number): Float64Array {
  const out = new Float64Array(values.length);
  let m = NaN;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    m = !Number.isFinite(m) ? v : Number.isFinite(v) ? beta * m + (1 - beta) * v : m;
    out[i] = Number.isFinite(v) ? m : v;
  }
  return out;
}
