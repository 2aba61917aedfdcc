// The statistics a comparison of strategies needs, and nothing else: Student's
// t quantile (through the regularized incomplete beta function, so no table and
// no approximation to trust) and the summary of paired differences over seeds.
import { mean, std } from './facts.ts';

/** ln Γ(x) for x > 0: Lanczos (g = 7, 9 terms), ~15 significant digits. */
export function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  // Reflection keeps the series where it converges.
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  const z = x - 1;
  let sum = c[0]!;
  for (let i = 1; i < 9; i++) sum += c[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** The continued fraction of I_x(a, b) (modified Lentz; Numerical Recipes' betacf). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  const clamp = (v: number) => (Math.abs(v) < tiny ? tiny : v);
  let c = 1;
  let d = 1 / clamp(1 - ((a + b) * x) / (a + 1));
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const even = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1 / clamp(1 + even * d);
    c = clamp(1 + even / c);
    h *= d * c;
    const odd = (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 / clamp(1 + odd * d);
    c = clamp(1 + odd / c);
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-15) return h;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b), for a, b > 0 and x in [0, 1]. */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (!(a > 0 && b > 0) || !(x >= 0 && x <= 1)) throw new RangeError(`regularizedBeta: expected a, b > 0 and x in [0, 1], got x=${x}, a=${a}, b=${b}`);
  if (x === 0 || x === 1) return x;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x));
  // The fraction converges fast only below the mean; above it, use I_x(a, b) = 1 − I_{1−x}(b, a).
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(a, b, x)) / a : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/**
 * The t with P(T ≤ t) = p for `df` degrees of freedom (any df > 0), e.g.
 * studentTQuantile(0.975, 4) = 2.776. Solved by bisection on x = df / (df + t²),
 * where the upper tail 2(1 − p) = I_x(df/2, 1/2) is monotone: exact to double precision, no table.
 */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`studentTQuantile: expected p in (0, 1), got ${p}`);
  if (!(df > 0)) throw new RangeError(`studentTQuantile: expected degrees of freedom > 0, got ${df}`);
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  const tail = 2 * (1 - p);
  let lo = 0, hi = 1; // I_x rises with x; the answer x lies where I_x = tail
  for (let i = 0; i < 200 && hi - lo > 1e-17 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (regularizedBeta(mid, df / 2, 0.5) < tail) lo = mid;
    else hi = mid;
  }
  const x = (lo + hi) / 2;
  return Math.sqrt((df * (1 - x)) / x);
}

/** Paired differences summarised: mean, sample sd, the t confidence interval of the mean, and how many pairs favour the candidate. */
export interface PairedSummary {
  /** Pairs. */
  n: number;
  mean: number | null;
  /** Sample standard deviation of the differences (n − 1); null for n < 2. */
  sd: number | null;
  /** The confidence interval of the mean difference; null for n < 2 (no spread to estimate). */
  ci: [number, number] | null;
  /** Pairs whose difference is below 0: the candidate's loss lower than the baseline's. */
  wins: number;
}

/** Summary of differences candidate − baseline, one per pair; `level` is the interval's coverage. */
export function pairedSummary(diffs: number[], level = 0.95): PairedSummary {
  const n = diffs.length;
  const wins = diffs.filter((d) => d < 0).length;
  if (n === 0) return { n, mean: null, sd: null, ci: null, wins };
  const m = mean(diffs);
  const sd = std(diffs);
  if (sd === null) return { n, mean: m, sd: null, ci: null, wins };
  const half = (studentTQuantile((1 + level) / 2, n - 1) * sd) / Math.sqrt(n);
  return { n, mean: m, sd, ci: [m - half, m + half], wins };
}
