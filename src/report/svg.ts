// A small SVG plotter: line plots (linear or log axes, error bars, min–max
// bands, legend), grouped bar charts, and heatmap panels with a colour bar.
// Plain strings, no browser, so figures are made wherever the report runs and
// stay small enough to commit. Long series are reduced first (reduce.ts).
import { extent } from './reduce.ts';
import { rgbaPng } from './raster.ts';

export interface Axis {
  label: string;
  log?: boolean;
  /** Whole-number ticks only (blocks, steps). */
  integer?: boolean;
  /**
   * Symmetric log scale with this linear threshold: sign(v)·log10(1 + |v|/c), so
   * values of both signs spanning decades show (layer drop: 1e-4 … 1 nats).
   */
  symlog?: number;
}

export interface Series {
  label: string;
  color: string;
  /** SVG stroke-dasharray; absent: solid. */
  dash?: string;
  points: { x: number; y: number; err?: number }[];
  /** Draw a marker at each point (always on for one-point series). */
  markers?: boolean;
  /** No connecting line: points only. */
  noLine?: boolean;
  /** Leave out of the legend (e.g. a run's validation points, which share its colour). */
  noLegend?: boolean;
  /** A shaded band under the line, lo[i]…hi[i] at x[i] (a reduced series' min–max envelope). */
  band?: { x: ArrayLike<number>; lo: ArrayLike<number>; hi: ArrayLike<number> };
  /** Line width (default 1.8) and opacity (default 1): a raw series under its smoothed one is thin and faint. */
  width?: number;
  opacity?: number;
}

export interface LinePlot {
  title: string;
  subtitle?: string;
  x: Axis;
  y: Axis;
  series: Series[];
}

export interface HeatPanel {
  title: string;
  /** Column coordinates (e.g. steps) and row coordinates (e.g. blocks), ascending. */
  xs: number[];
  ys: number[];
  /** values[row][col]; NaN is drawn grey, null not at all (e.g. a triangular matrix). */
  values: (number | null)[][];
}

export interface Heatmap {
  title: string;
  subtitle?: string;
  x: Axis;
  y: Axis;
  colour: Axis;
  panels: HeatPanel[];
  /** Panels per row (default: up to 3). */
  columns?: number;
}

export interface BarGroup {
  label: string;
  color: string;
  /** One bar per category; null: no bar. */
  values: (number | null)[];
  /** Single values drawn as dots over the bar (e.g. each seed of a mean), per category. */
  points?: number[][];
}

/** One category of a dot plot (e.g. a strategy): every value (e.g. each seed's) and their summary. */
export interface DotGroup {
  label: string;
  color: string;
  values: number[];
  mean: number | null;
  std: number | null;
  /** Said under the label, e.g. "1 diverged". */
  note?: string;
}

export interface DotPlot {
  title: string;
  subtitle?: string;
  y: Axis;
  groups: DotGroup[];
}

export interface BarChart {
  title: string;
  subtitle?: string;
  /** The categories' axis (its label); categories are drawn in order. */
  x: Axis;
  y: Axis;
  categories: string[];
  groups: BarGroup[];
  /** Legend text for the dots. */
  pointsLabel?: string;
}

const FONT = 'font-family="DejaVu Sans, Arial, Helvetica, sans-serif"';
const W = 760;
const H = 460;
const M = { top: 56, right: 190, bottom: 56, left: 78 };

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const f = (v: number) => (Math.round(v * 100) / 100).toString();

interface Scale {
  map(v: number): number;
  ticks: number[];
}

/** Linear or log10 scale over the data range, padded, with readable ticks. */
export function scale(values: number[], axis: Axis, from: number, to: number): Scale {
  if (axis.symlog) return symlogScale(values, axis.symlog, from, to);
  const range = extent(values, (v) => !axis.log || v > 0);
  let lo = range ? range[0] : axis.log ? 1 : 0;
  let hi = range ? range[1] : axis.log ? 10 : 1;
  if (axis.log) {
    let [a, b] = [Math.log10(lo), Math.log10(hi)];
    if (b - a < 1e-9) { a -= 0.5; b += 0.5; }
    const pad = (b - a) * 0.05;
    [a, b] = [a - pad, b + pad];
    return { map: (v) => from + ((Math.log10(v) - a) / (b - a)) * (to - from), ticks: logTicks(a, b) };
  }
  if (hi - lo < 1e-12) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  const pad = (hi - lo) * 0.05;
  [lo, hi] = [lo - pad, hi + pad];
  return { map: (v) => from + ((v - lo) / (hi - lo)) * (to - from), ticks: linearTicks(lo, hi, axis.integer) };
}

function symlogScale(values: number[], c: number, from: number, to: number): Scale {
  const tr = (v: number) => Math.sign(v) * Math.log10(1 + Math.abs(v) / c);
  const range = extent(values);
  let lo = range ? Math.min(0, tr(range[0])) : 0;
  let hi = range ? Math.max(0, tr(range[1])) : 1;
  if (hi - lo < 1e-12) hi = lo + 1;
  const pad = (hi - lo) * 0.05;
  [lo, hi] = [lo - pad, hi + pad];
  // Ticks: 0 and ±c·10^k, the decades the data reach.
  const decades = Array.from({ length: 12 }, (_, k) => c * 10 ** k);
  const ticks = [...decades.map((d) => -d).reverse(), 0, ...decades].filter((t) => tr(t) >= lo && tr(t) <= hi);
  return { map: (v) => from + ((tr(v) - lo) / (hi - lo)) * (to - from), ticks };
}

function linearTicks(lo: number, hi: number, integer = false, target = 6): number[] {
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  // A few dozen blocks: label every block (or every other), not just 5 and 10.
  const step = integer ? (hi - lo <= 14 ? 1 : hi - lo <= 28 ? 2 : Math.max(1, Math.round(nice))) : nice;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

/** Powers of ten, with 2× and 5× between them when the range spans under two decades. */
function logTicks(a: number, b: number): number[] {
  const mults = b - a < 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = Math.floor(a); e <= Math.ceil(b); e++) {
    for (const m of mults) {
      const t = m * 10 ** e;
      if (Math.log10(t) >= a && Math.log10(t) <= b) ticks.push(t);
    }
  }
  return ticks.length >= 2 ? ticks : linearTicks(10 ** a, 10 ** b).filter((t) => t > 0);
}

export function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return Number(v.toPrecision(2)).toExponential().replace('e+', 'e');
  return Number(v.toPrecision(3)).toString();
}

function frame(width: number, height: number, title: string, subtitle: string | undefined, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
    subtitle ? `<text x="${width / 2}" y="42" text-anchor="middle" font-size="12" fill="#444">${esc(subtitle)}</text>` : '',
    ...body,
    '</svg>',
  ].filter(Boolean).join('\n') + '\n';
}

/** Axes with ticks, grid and labels around the box (x0, y0)–(x1, y1). */
function axes(box: { x0: number; y0: number; x1: number; y1: number }, xs: Scale, ys: Scale, x: Axis, y: Axis, fontSize = 12): string[] {
  const out = [`<rect x="${f(box.x0)}" y="${f(box.y0)}" width="${f(box.x1 - box.x0)}" height="${f(box.y1 - box.y0)}" fill="none" stroke="#333"/>`];
  for (const t of xs.ticks) {
    const px = f(xs.map(t));
    out.push(`<line x1="${px}" y1="${f(box.y0)}" x2="${px}" y2="${f(box.y1)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${px}" y="${f(box.y1 + 16)}" text-anchor="middle" font-size="${fontSize - 1}">${tickLabel(t)}</text>`);
  }
  for (const t of ys.ticks) {
    const py = f(ys.map(t));
    out.push(`<line x1="${f(box.x0)}" y1="${py}" x2="${f(box.x1)}" y2="${py}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${f(box.x0 - 6)}" y="${py}" dy="4" text-anchor="end" font-size="${fontSize - 1}">${tickLabel(t)}</text>`);
  }
  const cx = (box.x0 + box.x1) / 2;
  const cy = (box.y0 + box.y1) / 2;
  out.push(`<text x="${f(cx)}" y="${f(box.y1 + 36)}" text-anchor="middle" font-size="${fontSize + 1}">${esc(x.label)}${scaleNote(x)}</text>`);
  out.push(`<text transform="translate(${f(box.x0 - 56)},${f(cy)}) rotate(-90)" text-anchor="middle" font-size="${fontSize + 1}">${esc(y.label)}${scaleNote(y)}</text>`);
  return out;
}

function scaleNote(a: Axis): string {
  if (a.symlog) return ` (symlog, linear within ±${tickLabel(a.symlog)})`;
  return a.log ? ' (log scale)' : '';
}

/** A hollow marker: markers at the same place stay visible as overlapping rings, none hides another. */
function marker(cx: number | string, cy: number | string, color: string, r = 3.5): string {
  return `<circle class="marker" cx="${cx}" cy="${cy}" r="${r}" fill="white" fill-opacity="0.6" stroke="${color}" stroke-width="1.6"/>`;
}

function legend(series: Series[], x: number, y: number): string[] {
  const out: string[] = [];
  series.filter((s) => !s.noLegend).forEach((s, i) => {
    const yy = y + i * 18;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    out.push(`<line x1="${x}" y1="${yy}" x2="${x + 24}" y2="${yy}" stroke="${s.color}" stroke-width="2.5"${dash}/>`);
    if (s.markers || s.noLine) out.push(marker(x + 12, yy, s.color));
    out.push(`<text x="${x + 30}" y="${yy}" dy="4" font-size="12">${esc(s.label)}</text>`);
  });
  return out;
}

export function linePlot(p: LinePlot): string {
  const box = { x0: M.left, y0: M.top, x1: W - M.right, y1: H - M.bottom };
  const pts = p.series.flatMap((s) => s.points);
  const ys = pts.flatMap((q) => (q.err ? [q.y - q.err, q.y + q.err] : [q.y]));
  for (const s of p.series) if (s.band) for (const v of bandValues(s.band)) ys.push(v);
  const xs = scale(pts.map((q) => q.x), p.x, box.x0, box.x1);
  const yScale = scale(ys, p.y, box.y1, box.y0);
  const ok = (q: { x: number; y: number }) => Number.isFinite(q.x) && Number.isFinite(q.y) && (!p.y.log || q.y > 0) && (!p.x.log || q.x > 0);
  const body = axes(box, xs, yScale, p.x, p.y);
  body.push(`<clipPath id="plot"><rect x="${box.x0}" y="${box.y0}" width="${box.x1 - box.x0}" height="${box.y1 - box.y0}"/></clipPath>`);
  for (const s of p.series) if (s.band) body.push(bandPath(s.band, s.color, (x) => xs.map(x), (y) => yScale.map(y), ok));
  for (const s of p.series) {
    const good = s.points.filter(ok);
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    if (!s.noLine && good.length > 1) {
      const d = good.map((q, i) => `${i ? 'L' : 'M'}${f(xs.map(q.x))},${f(yScale.map(q.y))}`).join('');
      const opacity = s.opacity !== undefined && s.opacity < 1 ? ` stroke-opacity="${s.opacity}"` : '';
      body.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.8}"${opacity}${dash} clip-path="url(#plot)"/>`);
    }
    for (const q of good) {
      const [cx, cy] = [f(xs.map(q.x)), f(yScale.map(q.y))];
      if (q.err && q.err > 0) {
        const lo = p.y.log ? Math.max(q.y - q.err, q.y / 100) : q.y - q.err;
        body.push(`<line x1="${cx}" y1="${f(yScale.map(lo))}" x2="${cx}" y2="${f(yScale.map(q.y + q.err))}" stroke="${s.color}" stroke-width="1.5"/>`);
      }
      if (s.markers || s.noLine || good.length === 1) body.push(marker(cx, cy, s.color));
    }
  }
  body.push(...legend(p.series, W - M.right + 16, M.top + 8));
  return frame(W, H, p.title, p.subtitle, body);
}

/** The band's lows and highs (at most a few hundred: it is a reduced series). */
function bandValues(b: NonNullable<Series['band']>): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.x.length; i++) out.push(b.lo[i]!, b.hi[i]!);
  return out;
}

/** The min–max band as one closed path (highs left to right, lows back), broken where a bucket has no value. */
function bandPath(b: NonNullable<Series['band']>, color: string, mx: (x: number) => number, my: (y: number) => number, ok: (q: { x: number; y: number }) => boolean): string {
  const runs: number[][] = [[]];
  for (let i = 0; i < b.x.length; i++) {
    if (ok({ x: b.x[i]!, y: b.lo[i]! }) && ok({ x: b.x[i]!, y: b.hi[i]! })) runs.at(-1)!.push(i);
    else if (runs.at(-1)!.length) runs.push([]);
  }
  const d = runs.filter((r) => r.length).map((r) => {
    // A one-bucket run still shows its range: a hairline-wide band.
    const idx = r.length === 1 ? [r[0]!, r[0]!] : r;
    const top = idx.map((i, k) => `${k ? 'L' : 'M'}${f(mx(b.x[i]!) + (r.length === 1 ? k - 0.5 : 0))},${f(my(b.hi[i]!))}`);
    const bottom = [...idx].reverse().map((i, k) => `L${f(mx(b.x[i]!) + (r.length === 1 ? 0.5 - k : 0))},${f(my(b.lo[i]!))}`);
    return `${top.join('')}${bottom.join('')}Z`;
  }).join('');
  return `<path class="band" d="${d}" fill="${color}" fill-opacity="0.22" stroke="none" clip-path="url(#plot)"/>`;
}

/** Perceptually ordered colours (viridis anchors), interpolated. */
const VIRIDIS = ['#440154', '#414487', '#2a788e', '#22a884', '#7ad151', '#fde725'];

export function colourAt(t: number): string {
  if (!Number.isFinite(t)) return '#bbbbbb';
  const u = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(u));
  const [a, b] = [VIRIDIS[i]!, VIRIDIS[i + 1]!].map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));
  const c = a!.map((v, k) => Math.round(v + (b![k]! - v) * (u - i)));
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

export function heatmap(h: Heatmap): string {
  const cols = Math.max(1, Math.min(h.panels.length, h.columns ?? 3));
  const rows = Math.ceil(h.panels.length / cols);
  const pw = 250;
  const ph = 200;
  const top = 84;
  const width = 70 + cols * (pw + 70) + 90;
  const height = top + rows * (ph + 70);
  const tr = (v: number) => (h.colour.log ? Math.log10(v) : v);
  const range = extent(panelValues(h.panels), (v) => !h.colour.log || v > 0);
  const [lo, hi] = range ? [tr(range[0]), tr(range[1])] : [0, 1];
  const t = (v: number) => (Number.isFinite(v) && (!h.colour.log || v > 0) ? (tr(v) - lo) / (hi - lo || 1) : NaN);
  const body: string[] = [];
  // One cell shape, placed with <use> in unit coordinates of a scaled group: a few dozen bytes a cell.
  if (h.panels.some((p) => !rastered(p))) body.push('<defs><rect id="cell" width="1.02" height="1.02"/></defs>');
  h.panels.forEach((p, i) => {
    const x0 = 70 + (i % cols) * (pw + 70);
    const y0 = top + Math.floor(i / cols) * (ph + 70);
    const box = { x0, y0, x1: x0 + pw, y1: y0 + ph };
    const cw = pw / Math.max(1, p.xs.length);
    const rh = ph / Math.max(1, p.ys.length);
    if (rastered(p)) {
      body.push(rasterPanel(p, box, t));
    } else {
      // Row 0 at the bottom (depth, or the offset n, goes up the axis): the group's y axis points up.
      body.push(`<g transform="translate(${x0},${box.y1}) scale(${cw.toFixed(4)},${(-rh).toFixed(4)})">`);
      p.values.forEach((row, r) => row.forEach((v, c) => {
        if (v !== null) body.push(`<use href="#cell" x="${c}" y="${r}" fill="${colourAt(t(v))}"/>`);
      }));
      body.push('</g>');
    }
    body.push(`<rect x="${x0}" y="${y0}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
    body.push(`<text x="${x0 + pw / 2}" y="${y0 - 6}" text-anchor="middle" font-size="13" font-weight="bold">${esc(p.title)}</text>`);
    for (const [k, label] of edgeTicks(p.xs)) {
      body.push(`<text x="${f(x0 + (k + 0.5) * cw)}" y="${y0 + ph + 14}" text-anchor="middle" font-size="10">${label}</text>`);
    }
    for (const [k, label] of edgeTicks(p.ys)) {
      body.push(`<text x="${x0 - 5}" y="${f(box.y1 - (k + 0.5) * rh)}" dy="3" text-anchor="end" font-size="10">${label}</text>`);
    }
    body.push(`<text x="${x0 + pw / 2}" y="${y0 + ph + 30}" text-anchor="middle" font-size="11">${esc(h.x.label)}</text>`);
    body.push(`<text transform="translate(${x0 - 32},${y0 + ph / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(h.y.label)}</text>`);
  });
  body.push(...colourBar(width - 70, top, Math.min(260, rows * ph), lo, hi, h.colour));
  return frame(width, height, h.title, h.subtitle, body);
}

function* panelValues(panels: HeatPanel[]): Generator<number> {
  for (const p of panels) for (const row of p.values) for (const v of row) if (v !== null) yield v;
}

/** Panels with more cells than this are drawn as one embedded PNG (vector cells would cost ~40 bytes each). */
const VECTOR_CELLS = 1000;

const rastered = (p: HeatPanel) => p.xs.length * p.ys.length > VECTOR_CELLS;

/** The panel's cells as a PNG data URI, one pixel per cell (row 0 at the bottom), stretched over the box. */
function rasterPanel(p: HeatPanel, box: { x0: number; y0: number; x1: number; y1: number }, t: (v: number) => number): string {
  const [w, h] = [p.xs.length, p.ys.length];
  const rgba = new Uint8Array(w * h * 4);
  p.values.forEach((row, r) => row.forEach((v, c) => {
    if (v === null) return; // transparent
    const hex = colourAt(t(v));
    rgba.set([1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16)).concat(255), ((h - 1 - r) * w + c) * 4);
  }));
  const uri = `data:image/png;base64,${rgbaPng(w, h, rgba).toString('base64')}`;
  return `<image x="${box.x0}" y="${box.y0}" width="${box.x1 - box.x0}" height="${box.y1 - box.y0}" preserveAspectRatio="none" image-rendering="optimizeSpeed" style="image-rendering:pixelated" href="${uri}"/>`;
}

/** At most ~6 evenly spaced labels, always the first and last (dropping the one before the last if they would touch). */
function edgeTicks(vs: number[]): [number, string][] {
  const every = Math.max(1, Math.ceil(vs.length / 6));
  const last = vs.length - 1;
  const keep = (k: number) => k === 0 || k === last || (k % every === 0 && last - k >= Math.min(every, 2));
  return vs.map((v, k) => [k, tickLabel(v)] as [number, string]).filter(([k]) => keep(k));
}

function colourBar(x: number, y: number, height: number, lo: number, hi: number, axis: Axis): string[] {
  const steps = 40;
  const out: string[] = [];
  for (let i = 0; i < steps; i++) {
    out.push(`<rect x="${x}" y="${f(y + height - ((i + 1) * height) / steps)}" width="16" height="${f(height / steps + 0.3)}" fill="${colourAt(i / (steps - 1))}"/>`);
  }
  out.push(`<rect x="${x}" y="${y}" width="16" height="${height}" fill="none" stroke="#333"/>`);
  for (const [v, py] of [[lo, y + height], [(lo + hi) / 2, y + height / 2], [hi, y]] as const) {
    out.push(`<text x="${x + 20}" y="${f(py)}" dy="4" font-size="10">${tickLabel(axis.log ? 10 ** v : v)}</text>`);
  }
  out.push(`<text transform="translate(${x - 8},${f(y + height / 2)}) rotate(-90)" text-anchor="middle" font-size="11">${esc(axis.label)}${axis.log ? ' (log)' : ''}</text>`);
  return out;
}

/**
 * Grouped bars: one group of bars per category (e.g. a block), one bar per
 * series (e.g. a strategy) in its colour, dots for the single values behind a
 * bar, and a zero line (bars may be negative).
 */
export function barChart(b: BarChart): string {
  const slot = Math.max(8, Math.min(16, 560 / Math.max(1, b.categories.length * b.groups.length)));
  const plotWidth = Math.max(480, b.categories.length * (b.groups.length * slot + 12));
  const width = M.left + plotWidth + M.right;
  const box = { x0: M.left, y0: M.top, x1: M.left + plotWidth, y1: H - M.bottom };
  const all = b.groups.flatMap((g) => [...g.values, ...(g.points ?? []).flat()]).filter((v): v is number => v !== null && Number.isFinite(v));
  const ys = scale([0, ...all], b.y, box.y1, box.y0);
  const body = axes(box, { map: () => 0, ticks: [] }, ys, b.x, b.y);
  const per = plotWidth / Math.max(1, b.categories.length);
  const barW = (per - 12) / Math.max(1, b.groups.length);
  const zero = ys.map(0);
  b.categories.forEach((category, c) => {
    const left = box.x0 + c * per + 6;
    b.groups.forEach((g, k) => {
      const v = g.values[c];
      const x = left + k * barW;
      if (v !== null && v !== undefined && Number.isFinite(v)) {
        const y = ys.map(v);
        body.push(`<rect class="bar" x="${f(x + 0.5)}" y="${f(Math.min(y, zero))}" width="${f(Math.max(1, barW - 1))}" height="${f(Math.max(0.5, Math.abs(zero - y)))}" fill="${g.color}"/>`);
      }
      for (const p of g.points?.[c] ?? []) {
        if (Number.isFinite(p)) body.push(`<circle class="point" cx="${f(x + barW / 2)}" cy="${f(ys.map(p))}" r="2.2" fill="white" stroke="#222" stroke-width="1"/>`);
      }
    });
    body.push(`<text x="${f(left + (per - 12) / 2)}" y="${f(box.y1 + 16)}" text-anchor="middle" font-size="11">${esc(category)}</text>`);
  });
  body.push(`<line x1="${box.x0}" y1="${f(zero)}" x2="${box.x1}" y2="${f(zero)}" stroke="#333"/>`);
  const lx = box.x1 + 16;
  b.groups.forEach((g, i) => {
    const y = M.top + 8 + i * 18;
    body.push(`<rect x="${lx}" y="${y - 6}" width="24" height="12" fill="${g.color}"/>`);
    body.push(`<text x="${lx + 30}" y="${y}" dy="4" font-size="12">${esc(g.label)}</text>`);
  });
  if (b.pointsLabel && b.groups.some((g) => g.points?.some((p) => p.length > 0))) {
    const y = M.top + 8 + b.groups.length * 18;
    body.push(`<circle cx="${lx + 12}" cy="${y}" r="2.2" fill="white" stroke="#222" stroke-width="1"/>`);
    body.push(`<text x="${lx + 30}" y="${y}" dy="4" font-size="12">${esc(b.pointsLabel)}</text>`);
  }
  return frame(width, H, b.title, b.subtitle, body);
}

/**
 * Horizontal offsets (in marker widths) for values drawn in one column, so no
 * two markers closer than `gap` pixels vertically share an offset: 0, +1, −1,
 * +2, … (a small beeswarm).
 */
export function dodge(pixels: number[], gap: number): number[] {
  const placed: { y: number; k: number }[] = [];
  return pixels.map((y) => {
    const taken = new Set(placed.filter((p) => Math.abs(p.y - y) < gap).map((p) => p.k));
    let k = 0;
    for (let i = 1; taken.has(k); i++) k = i % 2 ? (i + 1) / 2 : -i / 2;
    placed.push({ y, k });
    return k;
  });
}

/**
 * A dot plot: one column per category, every value as a hollow marker (dodged
 * sideways where they would overlap), the mean as a bar across the column with
 * ± one standard deviation as a vertical line.
 */
export function dotPlot(d: DotPlot): string {
  const per = Math.max(70, Math.min(130, 560 / Math.max(1, d.groups.length)));
  const plotWidth = per * d.groups.length;
  const width = M.left + plotWidth + 40;
  const box = { x0: M.left, y0: M.top, x1: M.left + plotWidth, y1: H - M.bottom - 14 };
  const all = d.groups.flatMap((g) => [...g.values, ...(g.mean !== null && g.std !== null ? [g.mean - g.std, g.mean + g.std] : [])]);
  const ys = scale(all, d.y, box.y1, box.y0);
  // The categories name themselves: no x-axis label (the notes sit where it would).
  const body = axes(box, { map: () => 0, ticks: [] }, ys, { label: '' }, d.y);
  const r = 4.5;
  d.groups.forEach((g, c) => {
    const cx = box.x0 + (c + 0.5) * per;
    if (g.mean !== null && Number.isFinite(g.mean)) {
      if (g.std !== null && g.std > 0) {
        body.push(`<line class="spread" x1="${f(cx)}" y1="${f(ys.map(g.mean - g.std))}" x2="${f(cx)}" y2="${f(ys.map(g.mean + g.std))}" stroke="${g.color}" stroke-width="1.5" stroke-opacity="0.7"/>`);
      }
      body.push(`<line class="mean" x1="${f(cx - per * 0.32)}" y1="${f(ys.map(g.mean))}" x2="${f(cx + per * 0.32)}" y2="${f(ys.map(g.mean))}" stroke="${g.color}" stroke-width="2.5"/>`);
    }
    const finite = g.values.filter((v) => Number.isFinite(v) && (!d.y.log || v > 0));
    const offsets = dodge(finite.map((v) => ys.map(v)), 2 * r + 1);
    finite.forEach((v, i) => body.push(marker(f(cx + offsets[i]! * (2 * r + 1)), f(ys.map(v)), g.color, r)));
    body.push(`<text x="${f(cx)}" y="${f(box.y1 + 16)}" text-anchor="middle" font-size="12">${esc(g.label)}</text>`);
    if (g.note) body.push(`<text x="${f(cx)}" y="${f(box.y1 + 30)}" text-anchor="middle" font-size="10" fill="#b3261e">${esc(g.note)}</text>`);
  });
  return frame(width, H, d.title, d.subtitle, body);
}
