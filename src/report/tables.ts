// Report tables and their four renderings — aligned text, Markdown, CSV, JSON —
// all from the same cells, so the formats cannot disagree.

/** A mean over seeds: diverged runs are counted, never averaged in; unfinished ones likewise. */
export interface Stat {
  mean: number | null;
  std: number | null;
  /** Finished runs averaged. */
  n: number;
  diverged: number;
  /** Runs not finished yet (pending, running, killed) or failed. */
  unfinished: number;
}

/** A confidence interval: rendered `[low, high]`, in CSV two columns. */
export interface Interval {
  low: number;
  high: number;
}

export type Cell = string | number | Stat | Interval | null;

export interface Table {
  /** File-name slug, e.g. `headline` or `grad-norm-first-12L-d64`. */
  id: string;
  title: string;
  note?: string;
  columns: string[];
  rows: Cell[][];
}

export const FORMATS = ['table', 'md', 'csv', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export function isStat(c: Cell): c is Stat {
  return c !== null && typeof c === 'object' && 'mean' in c;
}

export function isInterval(c: Cell): c is Interval {
  return c !== null && typeof c === 'object' && 'low' in c;
}

/** Four significant digits, exponent form outside [1e-3, 1e5). */
export function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(3);
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

/** Decimals that give a mean four significant digits; the std gets the same. */
function decimals(v: number): number {
  return Math.max(0, 3 - Math.floor(Math.log10(Math.max(Math.abs(v), 1e-12))));
}

export function formatStat(s: Stat): string {
  const notes = [
    s.diverged > 0 ? `${s.diverged} diverged` : '',
    s.unfinished > 0 ? `${s.unfinished} unfinished` : '',
  ].filter(Boolean).join(', ');
  if (s.mean === null) return s.diverged > 0 ? `diverged (${s.diverged}/${s.diverged + s.unfinished})` : s.unfinished > 0 ? 'unfinished' : '—';
  const d = decimals(s.mean);
  const value = s.std === null ? s.mean.toFixed(d) : `${s.mean.toFixed(d)} ± ${s.std.toFixed(d)}`;
  return `${value}${s.n > 1 || notes ? ` (n=${s.n}${notes ? `; ${notes}` : ''})` : ''}`;
}

export function cellText(c: Cell): string {
  if (c === null) return '—';
  if (typeof c === 'number') return formatNumber(c);
  if (isStat(c)) return formatStat(c);
  if (isInterval(c)) return `[${formatNumber(c.low)}, ${formatNumber(c.high)}]`;
  return c;
}

export function renderTable(t: Table, format: Format): string {
  switch (format) {
    case 'table': return textTable(t);
    case 'md': return markdownTable(t);
    case 'csv': return csvTable(t);
    case 'json': return JSON.stringify(jsonTable(t), null, 2) + '\n';
  }
}

function textTable(t: Table): string {
  const grid = [t.columns, ...t.rows.map((r) => r.map(cellText))];
  const widths = t.columns.map((_, c) => grid.reduce((w, r) => Math.max(w, (r[c] ?? '').length), 0));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [t.title, ...(t.note ? [t.note] : []), '', line(grid[0]!), rule, ...grid.slice(1).map(line), ''].join('\n');
}

function markdownTable(t: Table): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const row = (r: string[]) => `| ${r.map(esc).join(' | ')} |`;
  return [
    `### ${t.title}`, '', ...(t.note ? [t.note, ''] : []),
    row(t.columns), `|${t.columns.map((_, i) => (i === 0 ? ':---' : '---:')).join('|')}|`,
    ...t.rows.map((r) => row(r.map(cellText))), '',
  ].join('\n');
}

/**
 * CSV keeps full precision; a Stat column becomes mean, std, n, diverged, unfinished
 * columns, an Interval column low and high (empty where a row has none).
 */
function csvTable(t: Table): string {
  const statCols = t.columns.map((_, c) => t.rows.some((r) => isStat(r[c] ?? null)));
  const intervalCols = t.columns.map((_, c) => t.rows.some((r) => isInterval(r[c] ?? null)));
  const header = t.columns.flatMap((name, c) => (statCols[c] ? ['mean', 'std', 'n', 'diverged', 'unfinished'].map((k) => `${name} ${k}`)
    : intervalCols[c] ? [`${name} low`, `${name} high`] : [name]));
  const body = t.rows.map((r) => r.flatMap((cell, c) => {
    if (intervalCols[c]) return isInterval(cell) ? [String(cell.low), String(cell.high)] : ['', ''];
    if (!statCols[c]) return [csvValue(cell)];
    const s = isStat(cell) ? cell : { mean: null, std: null, n: 0, diverged: 0, unfinished: 0 };
    return [s.mean, s.std, s.n, s.diverged, s.unfinished].map((v) => (v === null ? '' : String(v)));
  }));
  return [header, ...body].map((r) => r.map(csvField).join(',')).join('\n') + '\n';
}

function csvValue(c: Cell): string {
  if (c === null) return '';
  if (typeof c === 'number') return String(c);
  return typeof c === 'string' ? c : '';
}

export function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** JSON: one object per row keyed by column, numbers and Stats as they are (NaN and ±inf as strings). */
export function jsonTable(t: Table): object {
  const value = (c: Cell): unknown => (typeof c === 'number' && !Number.isFinite(c) ? formatNumber(c) : c);
  return {
    id: t.id, title: t.title, ...(t.note && { note: t.note }),
    rows: t.rows.map((r) => Object.fromEntries(t.columns.map((name, i) => [name, value(r[i] ?? null)]))),
  };
}
