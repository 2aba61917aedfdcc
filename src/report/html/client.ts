// The report page's script (bundled with uPlot into the page by page.ts): it
// reads the embedded JSON and draws the tables, the curves and the heatmaps.
// Nothing here fetches anything: the page works offline.
import uPlot from 'uplot';
import type { PageData, PageGrid, PageRun } from './data.ts';

const data = JSON.parse(document.getElementById('normlab-data')!.textContent!) as PageData;
const runs = data.runs;
/** Runs the filter keeps, and the runs a click picked out (highlighted everywhere). */
let shown = runs.map(() => true);
let picked = new Set<number>();

type Value = number | null | undefined;

// ---------- small helpers ----------

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<Record<string, string>> = {}, ...kids: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (v !== undefined) e.setAttribute(k, v);
  e.append(...kids);
  return e;
}

/** Four significant digits, exponent form outside [1e-3, 1e5) (as the text report). */
function fmt(v: Value): string {
  if (v === null || v === undefined) return '—';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(3);
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

const runLabel = (r: PageRun) => `${r.group} · ${r.size} · seed ${r.seed}`;

const VIRIDIS = ['#440154', '#414487', '#2a788e', '#22a884', '#7ad151', '#fde725'].map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));

function viridis(t: number): string {
  const u = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(u));
  const c = VIRIDIS[i]!.map((v, k) => Math.round(v + (VIRIDIS[i + 1]![k]! - v) * (u - i)));
  return `rgb(${c.join(',')})`;
}

/** A colour scale over the finite values (log10 when asked and all positive). */
function colourScale(values: Value[], log: boolean): { colour: (v: Value) => string; lo: number; hi: number; log: boolean } {
  const ok = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v) && (!log || v > 0));
  const tr = (v: number) => (log ? Math.log10(v) : v);
  let lo = Infinity, hi = -Infinity;
  for (const v of ok) { lo = Math.min(lo, tr(v)); hi = Math.max(hi, tr(v)); }
  if (!(lo <= hi)) { lo = 0; hi = 1; }
  return {
    colour: (v) => (typeof v === 'number' && Number.isFinite(v) && (!log || v > 0) ? viridis((tr(v) - lo) / (hi - lo || 1)) : '#cccccc'),
    lo: log ? 10 ** lo : lo, hi: log ? 10 ** hi : hi, log,
  };
}

const tooltip = el('div', { class: 'tooltip', hidden: '' });
document.body.append(tooltip);

function showTip(e: MouseEvent, text: string): void {
  tooltip.textContent = text;
  tooltip.hidden = false;
  tooltip.style.left = `${e.pageX + 12}px`;
  tooltip.style.top = `${e.pageY + 12}px`;
}

// ---------- charts that follow the filter and the picked runs ----------

interface Linked {
  chart: uPlot;
  /** The run each series draws (index 0 is x: -1). */
  runOf: number[];
}
const linked: Linked[] = [];

function refreshLinked(): void {
  for (const { chart, runOf } of linked) {
    chart.series.forEach((s, i) => {
      const r = runOf[i]!;
      if (r < 0) return;
      s.alpha = picked.size === 0 || picked.has(r) ? 1 : 0.15;
      s.width = picked.has(r) ? 3 : (s as { baseWidth?: number }).baseWidth ?? s.width;
      if (s.show !== shown[r]) chart.setSeries(i, { show: shown[r]! }, false);
    });
    chart.redraw(false);
  }
  for (const row of document.querySelectorAll<HTMLElement>('[data-run]')) {
    const r = Number(row.dataset.run);
    row.classList.toggle('picked', picked.has(r));
    row.classList.toggle('filtered', !shown[r]);
  }
}

function pick(rs: number[]): void {
  const same = rs.length === picked.size && rs.every((r) => picked.has(r));
  picked = same ? new Set() : new Set(rs);
  refreshLinked();
  if (rs.length === 1 && !same) showRun(rs[0]!);
}

function chartWidth(box: HTMLElement): number {
  return Math.max(520, Math.min(1100, box.clientWidth || 900));
}

function lineChart(box: HTMLElement, opts: { x: string; y: string; logY: boolean; series: uPlot.Series[]; data: uPlot.AlignedData; runOf: number[]; bands?: uPlot.Band[]; asinh?: number; height?: number; xAxis?: Partial<uPlot.Axis>; xRange?: [number, number] }): uPlot {
  box.replaceChildren();
  const old = linked.findIndex((l) => l.chart.root.parentElement === box);
  if (old >= 0) { linked[old]!.chart.destroy(); linked.splice(old, 1); }
  for (const s of opts.series) (s as { baseWidth?: number }).baseWidth = s.width;
  const chart = new uPlot({
    width: chartWidth(box), height: opts.height ?? 340,
    scales: { x: { time: false, ...(opts.xRange && { range: opts.xRange }) }, y: opts.asinh ? { distr: 4, asinh: opts.asinh } : { distr: opts.logY ? 3 : 1 } },
    axes: [{ label: opts.x, ...opts.xAxis }, { label: opts.y, size: 64 }],
    series: [{ label: opts.x }, ...opts.series],
    ...(opts.bands && { bands: opts.bands }),
    legend: { live: true },
    cursor: { focus: { prox: 16 } },
    focus: { alpha: 0.3 },
  }, opts.data, box);
  linked.push({ chart, runOf: [-1, ...opts.runOf] });
  refreshLinked();
  return chart;
}

const runSeries = (r: PageRun, extra: Partial<uPlot.Series> = {}): uPlot.Series =>
  ({ label: runLabel(r), stroke: r.color, width: 1.5, ...(r.dash && { dash: [6, 4] }), points: { show: false }, value: (_u, v) => fmt(v), ...extra });

/** Hollow markers: where runs meet, every one stays visible. */
const hollow = (r: PageRun, size = 6): uPlot.Series.Points => ({ show: true, size, width: 1.5, fill: '#fff', stroke: r.color });

// ---------- filter ----------

/** A run's value for a filter key: its config's dotted key, or a field of the run (status, seed, strategy, size…). */
function fieldOf(r: PageRun, key: string): unknown {
  if (key in r.config) return r.config[key];
  return (r as unknown as Record<string, unknown>)[key];
}

function matches(r: PageRun, terms: string[]): boolean {
  return terms.every((t) => {
    const m = /^([\w.]+)(!?=)(.*)$/.exec(t);
    if (!m) return [r.id, r.group, r.status, r.size].some((s) => s.toLowerCase().includes(t.toLowerCase()));
    const v = fieldOf(r, m[1]!);
    const eq = v !== undefined && String(v) === m[3];
    return m[2] === '=' ? eq : !eq;
  });
}

function setupFilter(): void {
  const input = document.getElementById('filter') as HTMLInputElement;
  const list = el('datalist', { id: 'filter-keys' });
  const keys = [...new Set(['status', 'seed', 'strategy', 'size', ...data.varying, ...Object.keys(runs[0]?.config ?? {})])];
  for (const k of keys) for (const v of new Set(runs.map((r) => String(fieldOf(r, k))))) list.append(el('option', { value: `${k}=${v}` }));
  input.after(list);
  input.setAttribute('list', 'filter-keys');
  input.addEventListener('input', () => {
    const terms = input.value.trim().split(/\s+/).filter(Boolean);
    shown = runs.map((r) => matches(r, terms));
    document.getElementById('filter-count')!.textContent = `${shown.filter(Boolean).length} of ${runs.length} runs`;
    renderHeadline();
    refreshLinked();
  });
  document.getElementById('filter-count')!.textContent = `${runs.length} runs`;
}

// ---------- tables ----------

interface Column<T> {
  label: string;
  value: (row: T) => string | number | null;
  text?: (row: T) => string;
  cls?: (row: T) => string;
}

/** A table whose header cells sort it (click again: descending); nulls sort last. */
function sortableTable<T>(box: HTMLElement, columns: Column<T>[], rows: T[], attrs: (row: T) => Record<string, string>, onClick?: (row: T, col: number) => void): void {
  let sortBy = -1, dir = 1;
  const table = el('table', { class: 'sortable' });
  const draw = () => {
    const order = rows.map((_, i) => i);
    if (sortBy >= 0) {
      const key = columns[sortBy]!.value;
      order.sort((a, b) => {
        const [x, y] = [key(rows[a]!), key(rows[b]!)];
        if (x === null || y === null) return x === null ? (y === null ? 0 : 1) : -1;
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
    }
    const head = el('tr', {}, ...columns.map((c, k) => {
      const th = el('th', { title: 'sort', class: k === sortBy ? (dir > 0 ? 'asc' : 'desc') : '' }, c.label);
      th.addEventListener('click', () => { dir = k === sortBy ? -dir : 1; sortBy = k; draw(); });
      return th;
    }));
    const body = order.map((i) => {
      const row = rows[i]!;
      const tr = el('tr', attrs(row), ...columns.map((c, k) => {
        const td = el('td', { class: c.cls?.(row) ?? '' }, c.text ? c.text(row) : typeof c.value(row) === 'number' ? fmt(c.value(row) as number) : String(c.value(row) ?? '—'));
        if (onClick) td.addEventListener('click', () => onClick(row, k));
        return td;
      }));
      return tr;
    });
    table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...body));
    refreshLinked();
  };
  box.replaceChildren(table);
  draw();
}

interface Cell { n: number; mean: number | null; std: number | null; diverged: number; unfinished: number; runs: number[] }

/** Mean ± sample std of the finished runs' final validation perplexity; diverged and unfinished runs counted apart. */
function cellStat(rs: number[]): Cell | null {
  if (rs.length === 0) return null;
  const done = rs.filter((r) => runs[r]!.status === 'finished' && runs[r]!.valPpl !== null);
  const diverged = rs.filter((r) => runs[r]!.status === 'diverged' || (runs[r]!.status === 'finished' && runs[r]!.valPpl === null)).length;
  const vs = done.map((r) => runs[r]!.valPpl!);
  const mean = vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
  const std = vs.length > 1 ? Math.sqrt(vs.reduce((a, v) => a + (v - mean!) ** 2, 0) / (vs.length - 1)) : null;
  return { n: vs.length, mean, std, diverged, unfinished: rs.length - vs.length - diverged, runs: rs };
}

function cellText(c: Cell | null): string {
  if (!c) return '';
  const notes = [c.diverged ? `${c.diverged} diverged` : '', c.unfinished ? `${c.unfinished} unfinished` : ''].filter(Boolean).join(', ');
  if (c.mean === null) return c.diverged ? `diverged (${c.diverged}/${c.diverged + c.unfinished})` : 'unfinished';
  const d = Math.max(0, 3 - Math.floor(Math.log10(Math.max(Math.abs(c.mean), 1e-12))));
  return `${c.mean.toFixed(d)}${c.std === null ? '' : ` ± ${c.std.toFixed(d)}`}${c.n > 1 || notes ? ` (n=${c.n}${notes ? `; ${notes}` : ''})` : ''}`;
}

function renderHeadline(): void {
  const rows = data.groups.map((g) => ({
    group: g,
    cells: data.sizes.map((s) => cellStat(runs.flatMap((r, i) => (shown[i] && r.group === g && r.size === s ? [i] : [])))),
  })).filter((row) => row.cells.some((c) => c !== null));
  const columns: Column<(typeof rows)[number]>[] = [
    { label: 'strategy', value: (row) => data.groups.indexOf(row.group), text: (row) => row.group },
    ...data.sizes.map((s, k): Column<(typeof rows)[number]> => ({
      label: s, value: (row) => row.cells[k]?.mean ?? null, text: (row) => cellText(row.cells[k] ?? null),
      cls: (row) => ((row.cells[k]?.diverged ?? 0) > 0 ? 'diverged num' : 'num'),
    })),
  ];
  sortableTable(document.getElementById('headline')!, columns, rows, () => ({}), (row, k) => {
    const c = k > 0 ? row.cells[k - 1] : null;
    pick(c ? c.runs : runs.flatMap((r, i) => (r.group === row.group ? [i] : [])));
  });
}

/**
 * With one model size: every finished run's final validation perplexity as a
 * hollow marker over its strategy (seeds dodged sideways), the strategy's mean
 * as a bar — the seeds' spread in view, not only the mean.
 */
function renderDots(): void {
  const box = document.getElementById('dots')!;
  if (data.sizes.length !== 1) { box.remove(); return; }
  const G = data.groups;
  const done = runs.flatMap((r, i) => (r.valPpl !== null && r.status === 'finished' ? [i] : []));
  const offset = new Map<number, number>();
  for (const g of G) done.filter((i) => runs[i]!.group === g).forEach((i, k, all) => offset.set(i, (k - (all.length - 1) / 2) * 0.08));
  // x: each run's slot, and each strategy's bar ends.
  const xs = [...new Set([...done.map((i) => G.indexOf(runs[i]!.group) + offset.get(i)!), ...G.flatMap((_, g) => [g - 0.3, g + 0.3])])].sort((a, b) => a - b);
  const ys = done.map((i) => xs.map((x) => (x === G.indexOf(runs[i]!.group) + offset.get(i)! ? runs[i]!.valPpl : null)));
  const means = G.map((g, k) => {
    const c = cellStat(runs.flatMap((r, i) => (r.group === g ? [i] : [])));
    return xs.map((x) => (c?.mean != null && (x === k - 0.3 || x === k + 0.3) ? c.mean : null));
  });
  const groupColour = (g: string) => runs.find((r) => r.group === g)!.color;
  lineChart(box, {
    x: 'strategy', y: 'final validation perplexity', logY: false, height: 300, xRange: [-0.6, G.length - 0.4],
    // One tick per strategy, named.
    xAxis: { splits: () => G.map((_, k) => k), values: (_u, splits) => splits.map((v) => G[v] ?? '') },
    series: [
      ...done.map((i) => runSeries(runs[i]!, { paths: () => null, points: hollow(runs[i]!, 9) })),
      ...G.map((g) => ({ label: `${g} mean`, stroke: groupColour(g), width: 3, spanGaps: true, points: { show: false }, value: (_u: uPlot, v: number | null) => fmt(v) })),
    ],
    data: [xs, ...ys, ...means] as uPlot.AlignedData, runOf: [...done, ...G.map(() => -1)],
  });
}

function statusText(r: PageRun): string {
  return r.status === 'diverged' ? `diverged at step ${r.divergedStep ?? r.step}` : r.status;
}

function renderRuns(): void {
  const extra = data.varying.filter((k) => k !== 'train.seed' && k !== 'model.norm');
  const columns: Column<number>[] = [
    { label: 'run', value: (i) => runs[i]!.id },
    { label: 'strategy', value: (i) => runs[i]!.group, cls: () => 'swatch' },
    { label: 'size', value: (i) => runs[i]!.size },
    { label: 'seed', value: (i) => runs[i]!.seed },
    { label: 'status', value: (i) => statusText(runs[i]!), cls: (i) => (runs[i]!.status === 'diverged' ? 'diverged' : '') },
    { label: 'step', value: (i) => runs[i]!.step, text: (i) => `${runs[i]!.step}/${runs[i]!.totalSteps}` },
    { label: 'val loss', value: (i) => runs[i]!.valLoss, cls: () => 'num' },
    { label: 'val ppl', value: (i) => runs[i]!.valPpl, cls: () => 'num' },
    { label: 'code', value: (i) => `${runs[i]!.provenance.normlab} @ ${runs[i]!.provenance.git}` },
    ...extra.map((k): Column<number> => ({ label: k, value: (i) => { const v = runs[i]!.config[k]; return typeof v === 'number' ? v : v === undefined ? null : JSON.stringify(v); } })),
  ];
  sortableTable(document.getElementById('runs')!, columns, runs.map((_, i) => i),
    (i) => ({ 'data-run': String(i), style: `--run-colour: ${runs[i]!.color}` }), (i) => pick([i]));
}

function showRun(i: number): void {
  const r = runs[i]!;
  const box = document.getElementById('run-detail')!;
  const facts: [string, string][] = [
    ['run', r.id], ['strategy', r.group], ['size', r.size], ['seed', String(r.seed)], ['status', statusText(r)],
    ['step', `${r.step}/${r.totalSteps}`], ['backend', r.backend], ['final val loss', fmt(r.valLoss)], ['final val ppl', fmt(r.valPpl)],
    ['normlab', r.provenance.normlab], ['git', r.provenance.git], ['backend versions', r.provenance.backend], ['host', r.provenance.host], ['node', r.provenance.node],
    ...(r.error ? [['error', r.error] as [string, string]] : []),
  ];
  box.replaceChildren(
    el('h3', {}, runLabel(r)),
    el('table', { class: 'kv' }, ...facts.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v)))),
    el('details', { open: '' }, el('summary', {}, 'config'),
      el('table', { class: 'kv' }, ...Object.entries(r.config).map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, JSON.stringify(v)))))),
  );
}

// ---------- loss curves ----------

function renderLoss(): void {
  const box = document.getElementById('loss-chart')!;
  const slider = document.getElementById('smoothing') as HTMLInputElement;
  const logY = document.getElementById('loss-log') as HTMLInputElement;
  const label = document.getElementById('smoothing-value')!;
  slider.max = String(data.smoothing.length - 1);
  // One aligned table for every run and smoothing level, so moving the slider only picks columns.
  const tables: uPlot.AlignedData[] = [];
  runs.forEach((_, r) => {
    const l = data.loss[r]!;
    tables.push([l.x, ...l.levels, ...(l.lo && l.hi ? [l.lo, l.hi] : [])] as uPlot.AlignedData);
    tables.push([l.val.x, l.val.y] as uPlot.AlignedData);
  });
  const joined = uPlot.join(tables, tables.map((t) => t.slice(1).map(() => 1 as const)));
  // Column of each table's first y series in the joined data.
  const starts: number[] = [];
  let at = 1;
  for (const t of tables) { starts.push(at); at += t.length - 1; }
  const draw = () => {
    const level = Number(slider.value);
    const beta = data.smoothing[level]!;
    label.textContent = beta === 0 ? 'raw' : `EMA ${beta} over the raw loss`;
    const series: uPlot.Series[] = [];
    const columns: uPlot.AlignedData[number][] = [joined[0]];
    const runOf: number[] = [];
    const bands: uPlot.Band[] = [];
    runs.forEach((r, i) => {
      const l = data.loss[i]!;
      const train = starts[2 * i]!;
      if (beta > 0) {
        // The raw loss stays, faint, under its smoothed line: smoothing never hides what happened.
        series.push(runSeries(r, { label: `${runLabel(r)} raw`, width: 1, stroke: `${r.color}55` }));
        columns.push(joined[train]!);
        runOf.push(i);
      } else if (l.lo && l.hi) {
        series.push(runSeries(r, { label: `${runLabel(r)} max`, width: 0 }), runSeries(r, { label: `${runLabel(r)} min`, width: 0 }));
        columns.push(joined[train + l.levels.length + 1]!, joined[train + l.levels.length]!);
        runOf.push(i, i);
        bands.push({ series: [series.length, series.length - 1], fill: `${r.color}33` });
      }
      series.push(runSeries(r, beta > 0 ? { label: `${runLabel(r)} EMA ${beta}` } : {}));
      columns.push(joined[train + level]!);
      runOf.push(i);
      series.push(runSeries(r, { label: `${runLabel(r)} val`, paths: () => null, points: hollow(r, 7) }));
      columns.push(joined[starts[2 * i + 1]!]!);
      runOf.push(i);
    });
    const reduced = Math.max(...data.loss.map((l) => l.stepsPerPoint));
    document.getElementById('loss-note')!.textContent = reduced > 1
      ? `Each point is the mean of up to ${reduced} steps (smoothing computed on every step first); the band is their min–max.` : '';
    lineChart(box, { x: 'step', y: 'loss (nats per token)', logY: logY.checked, series, data: columns as uPlot.AlignedData, runOf, ...(bands.length && { bands }) });
  };
  slider.addEventListener('input', draw);
  logY.addEventListener('change', draw);
  draw();
}

// ---------- per-block heatmaps ----------

/** A heatmap on a canvas: values[row][col], row 0 at the bottom. */
function heatCanvas(title: string, values: Value[][], colour: (v: Value) => string, tip: (row: number, col: number) => string): HTMLElement {
  const W = 280, H = 150;
  const canvas = el('canvas', { width: String(W * devicePixelRatio), height: String(H * devicePixelRatio), style: `width:${W}px;height:${H}px` });
  const ctx = canvas.getContext('2d')!;
  ctx.scale(devicePixelRatio, devicePixelRatio);
  const rows = values.length, cols = Math.max(1, ...values.map((r) => r.length));
  const cw = W / cols, rh = H / Math.max(1, rows);
  // Rows may be shorter than others (the angular matrix's triangle): missing cells stay blank, null ones (NaN) grey.
  values.forEach((row, r) => row.forEach((v, c) => {
    ctx.fillStyle = colour(v);
    ctx.fillRect(c * cw, H - (r + 1) * rh, cw + 0.5, rh + 0.5);
  }));
  canvas.addEventListener('mousemove', (e) => {
    const rect = canvas.getBoundingClientRect();
    const c = Math.floor(((e.clientX - rect.left) / rect.width) * cols);
    const r = rows - 1 - Math.floor(((e.clientY - rect.top) / rect.height) * rows);
    if (r >= 0 && r < rows && c >= 0 && c < cols) showTip(e, tip(r, c));
  });
  canvas.addEventListener('mouseleave', () => { tooltip.hidden = true; });
  return el('figure', { class: 'heat' }, el('figcaption', {}, title), canvas);
}

function colourBar(lo: number, hi: number, log: boolean, label: string): HTMLElement {
  const canvas = el('canvas', { width: '200', height: '12', class: 'colourbar' });
  const ctx = canvas.getContext('2d')!;
  for (let x = 0; x < 200; x++) { ctx.fillStyle = viridis(x / 199); ctx.fillRect(x, 0, 1, 12); }
  return el('div', { class: 'legend-bar' }, `${label}${log ? ' (log scale)' : ''}: ${fmt(lo)} `, canvas, ` ${fmt(hi)}`);
}

const METRICS: { key: 'gradNorm' | 'outputVar'; label: string }[] = [
  { key: 'gradNorm', label: 'gradient norm (L2)' },
  { key: 'outputVar', label: 'output variance' },
];

function renderLayerHeatmaps(): void {
  for (const m of METRICS) {
    const box = document.getElementById(`heat-${m.key}`)!;
    const grids = data[m.key];
    const scale = colourScale(grids.flatMap((g) => g.values.flat()), true);
    const figs = runs.map((r, i) => {
      const g = grids[i]!;
      const fig = heatCanvas(runLabel(r), g.values, scale.colour,
        (b, c) => `${runLabel(r)}\nstep ${g.steps[c]}${g.stepsPerColumn > 1 ? ` (+${g.stepsPerColumn - 1})` : ''}, block ${b + 1}: ${fmt(g.values[b]?.[c])}`);
      fig.dataset.run = String(i);
      fig.addEventListener('click', () => pick([i]));
      return fig;
    });
    const steps = grids.flatMap((g) => [g.steps[0], g.steps.at(-1)]).filter((s): s is number => s !== undefined);
    box.replaceChildren(
      colourBar(scale.lo, scale.hi, true, m.label),
      el('p', { class: 'note' }, `x: step ${steps.length ? `${Math.min(...steps)}–${Math.max(...steps)}` : ''}; y: block, 1 (nearest the embedding) at the bottom. Hover for values, click to pick the run.`),
      el('div', { class: 'grid' }, ...figs),
    );
  }
}

/** The column of `g` at or before `step` (its first column when none is). */
function columnAt(g: PageGrid, step: number): number {
  let c = 0;
  while (c + 1 < g.steps.length && g.steps[c + 1]! <= step) c++;
  return c;
}

function renderDepth(): void {
  const box = document.getElementById('depth-chart')!;
  const slider = document.getElementById('depth-step') as HTMLInputElement;
  const metric = document.getElementById('depth-metric') as HTMLSelectElement;
  const label = document.getElementById('depth-step-value')!;
  const draw = () => {
    const m = METRICS.find((x) => x.key === metric.value)!;
    const grids = data[m.key];
    const steps = [...new Set(grids.flatMap((g) => g.steps))].sort((a, b) => a - b);
    slider.max = String(Math.max(0, steps.length - 1));
    if (Number(slider.value) > steps.length - 1) slider.value = String(steps.length - 1);
    const step = steps[Number(slider.value)] ?? 0;
    label.textContent = `step ${step}`;
    const L = Math.max(1, ...runs.map((r) => r.layers));
    const x = Array.from({ length: L }, (_, b) => b + 1);
    const ys = runs.map((_, i) => {
      const g = grids[i]!;
      const c = columnAt(g, step);
      return x.map((b) => (g.steps.length && g.steps[c]! <= step ? g.values[b - 1]?.[c] ?? null : null));
    });
    lineChart(box, {
      x: 'block (1 = nearest the embedding)', y: m.label, logY: true,
      series: runs.map((r) => runSeries(r, { points: hollow(r) })), data: [x, ...ys] as uPlot.AlignedData, runOf: runs.map((_, i) => i),
    });
  };
  slider.addEventListener('input', draw);
  metric.addEventListener('change', draw);
  slider.value = '1000000';
  draw();
}

// ---------- layer analyses ----------

function renderAnalyses(): void {
  const box = document.getElementById('analyses')!;
  const with_ = (has: (i: number) => boolean) => runs.flatMap((_, i) => (has(i) ? [i] : []));
  const angular = with_((i) => data.analyses[i]!.angular !== undefined);
  const drop = with_((i) => data.analyses[i]!.layerDrop !== undefined);
  const variance = with_((i) => data.analyses[i]!.variance !== undefined);
  const maxAbs = with_((i) => data.analyses[i]!.maxAbs !== undefined);
  if (!angular.length && !drop.length && !variance.length && !maxAbs.length) {
    box.replaceChildren(el('p', { class: 'note' }, 'No run has layer analyses (normlab analyze <run>).'));
    return;
  }
  const parts: HTMLElement[] = [];
  if (angular.length) {
    const scale = colourScale(angular.flatMap((i) => data.analyses[i]!.angular!.matrix.flat()), false);
    parts.push(el('h3', {}, 'Angular distance d(hᵢ, hᵢ₊ₙ) between hidden states'),
      colourBar(scale.lo, scale.hi, false, 'arccos(cos)/π'),
      el('p', { class: 'note' }, 'x: i, the first hidden state (0 = embedding output); y: n, blocks spanned (1 at the bottom). Last token of validation sequences.'),
      el('div', { class: 'grid' }, ...angular.map((i) => {
        const a = data.analyses[i]!.angular!;
        const fig = heatCanvas(`${runLabel(runs[i]!)} · step ${a.step}`, a.matrix, scale.colour, (n, c) => `${runLabel(runs[i]!)}\nd(h${c}, h${c + n + 1}) = ${fmt(a.matrix[n]?.[c])}`);
        fig.dataset.run = String(i);
        return fig;
      })));
  }
  const charts: [string, HTMLElement, () => void][] = [];
  if (drop.length) {
    const b = el('div', { class: 'chart' });
    parts.push(el('h3', {}, 'Loss increase when one block is replaced by the identity (layer drop)'), b);
    charts.push(['drop', b, () => layerDropChart(b, drop)]);
  }
  if (variance.length) {
    const b = el('div', { class: 'chart' });
    parts.push(el('h3', {}, 'Variance of the hidden state after each block'), b);
    charts.push(['variance', b, () => depthLines(b, variance, (i) => data.analyses[i]!.variance!.values, 0, 'ℓ: blocks applied (0 = embedding output)', 'variance of h_ℓ')]);
  }
  if (maxAbs.length) {
    const b = el('div', { class: 'chart' });
    parts.push(el('h3', {}, 'Largest absolute activation of each block\'s output'), b);
    charts.push(['max', b, () => depthLines(b, maxAbs, (i) => data.analyses[i]!.maxAbs!.values, 1, 'block ℓ (1 = nearest the embedding)', 'max |h_ℓ|')]);
  }
  const sets = [...new Set(data.analyses.flatMap((a) => (a.sampleSet === undefined ? [] : [a.sampleSet])))];
  const named = sets.map((s) => (s.startsWith('sample set') ? s : `sample set ${s}`));
  parts.push(el('p', { class: 'note' }, `Computed on ${named.join('; ')} (one set per run).`));
  box.replaceChildren(...parts);
  for (const [, , draw] of charts) draw();
}

function depthLines(box: HTMLElement, which: number[], values: (i: number) => Value[], from: number, x: string, y: string): void {
  const n = Math.max(...which.map((i) => values(i).length));
  const xs = Array.from({ length: n }, (_, k) => k + from);
  lineChart(box, {
    x, y, logY: true, series: which.map((i) => runSeries(runs[i]!, { points: hollow(runs[i]!) })),
    data: [xs, ...which.map((i) => xs.map((_, k) => values(i)[k] ?? null))] as uPlot.AlignedData, runOf: which,
  });
}

/** Bars side by side: run k of K sits at block + (k − (K − 1)/2)·w, so each bar has its own x. */
function layerDropChart(box: HTMLElement, which: number[]): void {
  const L = Math.max(...which.map((i) => data.analyses[i]!.layerDrop!.values.length));
  const K = which.length;
  const w = 0.8 / K;
  const xs: number[] = [];
  for (let b = 1; b <= L; b++) for (let k = 0; k < K; k++) xs.push(b + (k - (K - 1) / 2) * w);
  const ys = which.map((i, k) => xs.map((_, j) => (j % K === k ? data.analyses[i]!.layerDrop!.values[Math.floor(j / K)] ?? null : null)));
  const bars = uPlot.paths.bars!({ size: [0.9, 40], align: 0 });
  lineChart(box, {
    x: 'block removed (1 = nearest the embedding)', y: 'Δ val. loss (nats/token, asinh scale)', logY: false, asinh: 1e-3,
    series: which.map((i) => runSeries(runs[i]!, { paths: bars, fill: runs[i]!.color, width: 0 })),
    data: [xs, ...ys] as uPlot.AlignedData, runOf: which,
  });
}

// ---------- page ----------

setupFilter();
renderHeadline();
renderDots();
renderRuns();
if (runs.length) showRun(0);
renderLoss();
renderLayerHeatmaps();
renderDepth();
renderAnalyses();
document.body.dataset.ready = 'true';
