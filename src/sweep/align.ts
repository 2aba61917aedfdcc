// Text columns, in a module of their own so `normlab runs` can align its table
// without loading the sweep planner (and through it the trainer).

/** Rows as space-aligned columns (the last column left ragged). */
export function align(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => rows.reduce((w, r) => Math.max(w, (r[c] ?? '').length), 0));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}
