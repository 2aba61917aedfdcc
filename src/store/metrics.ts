// The one query layer over a store's metric rows, for both layouts (schema.ts):
// the text layout of version 1 and the compact one of version 2. Everything
// above the store reads through these methods, so the report never knows
// which layout a file has. Aggregates (bins, means, ratios) run in SQL per run
// and metric, so a 100,000-step sweep is never loaded into JS arrays at once.
import type Database from 'better-sqlite3';
import { KIND, type Layout } from './schema.ts';

export interface ScalarRow { runId: string; step: number; name: string; value: number }
export interface LayerRow { runId: string; step: number; name: string; layer: number; value: number }
export interface ParamRow { runId: string; step: number; name: string; param: string; value: number }

export interface MetricBatch {
  scalars?: ScalarRow[];
  layers?: LayerRow[];
  params?: ParamRow[];
}

export type MetricKind = 'scalar' | 'layer' | 'param';

export interface MetricRow { kind: MetricKind; step: number; name: string; index: number | string | null; value: number }

/**
 * Rows of one metric, ~CHUNK_ROWS at a time; value null for NaN. The compact
 * layout reads one series at a time: `index` (null, the layer or the parameter)
 * holds for every row and rows are [step, value]. The text layout's rows carry
 * their own: [step, index, value], and `index` is undefined.
 */
export type MetricChunk = { kind: MetricKind; name: string } & (
  | { index: number | string | null; rows: [number, number | null][] }
  | { index?: undefined; rows: [number, number | string | null, number | null][] }
);

/** Rows per chunk: one SQLite call reads many rows, and a chunk dies young (garbage collected cheaply). */
export const CHUNK_ROWS = 10_000;

/** Buckets of whole steps (report/reduce.ts StepBins): bucket = clamp(floor((step − x0) / width), 0, count − 1). */
export interface StepBuckets { x0: number; width: number; count: number }

export interface BucketCell { bin: number; row: number; mean: number; max: number; count: number }

/** The columns of one scalar series, ready for reduction. */
export interface Columns { steps: Float64Array; values: Float64Array }

export interface MetricTables {
  readonly layout: Layout;
  write(batch: MetricBatch): void;
  deleteAfter(runId: string, step: number): void;
  scalarColumns(runId: string, name: string): Columns;
  /** The last `n` values of a scalar, oldest first. */
  scalarTail(runId: string, name: string, n: number): { step: number; value: number }[];
  layerRows(runId: string, name: string): { step: number; layer: number; value: number }[];
  paramRows(runId: string, name: string): { step: number; param: string; value: number }[];
  /** How many steps have this layer metric, and the first and last. */
  layerSteps(runId: string, name: string): { count: number; first: number; last: number } | undefined;
  /** Values by layer at one step. */
  layerAt(runId: string, name: string, step: number): Map<number, number>;
  /** Mean over steps of the finite values, by layer. */
  layerMeans(runId: string, name: string): Map<number, number>;
  /** The step where layer a's value over layer b's is smallest (earliest on a tie). */
  lowestRatio(runId: string, name: string, a: number, b: number): { step: number; value: number } | undefined;
  /** Mean, max and count per step bucket and layer. */
  layerBuckets(runId: string, name: string, buckets: StepBuckets): BucketCell[];
  /** Every row of one run, kind by kind, grouped by metric name, in chunks (exports: one SQLite call per chunk, not per row). */
  chunks(runId: string): Generator<MetricChunk>;
  countRows(runId: string): { scalars: number; layers: number; params: number };
}

const nan = (v: number | null) => v ?? NaN;
// Parameters bind as REAL: CAST makes the division whole (floor, steps ≥ x0), as reduce.ts binOf.
const BUCKET = 'max(0, min(@last, CAST((step - @x0) / @width AS INTEGER)))';
const FINITE_MEAN = 'avg(CASE WHEN abs(value) < 9e999 THEN value END)';
const bucketArgs = (b: StepBuckets) => ({ x0: b.x0, width: b.width, last: b.count - 1 });

function columns(rows: Iterable<unknown[]>, n: number): Columns {
  const steps = new Float64Array(n), values = new Float64Array(n);
  let i = 0;
  for (const [s, v] of rows as Iterable<[number, number | null]>) {
    steps[i] = s;
    values[i++] = v ?? NaN;
  }
  return { steps: steps.subarray(0, i), values: values.subarray(0, i) };
}

/** Version 1: one row per value, run id and names as text. */
export class TextTables implements MetricTables {
  readonly layout = 'text';
  constructor(private readonly db: Database.Database) {}

  write(batch: MetricBatch): void {
    const scalar = this.db.prepare('INSERT OR REPLACE INTO scalars VALUES (@runId, @step, @name, @value)');
    const layer = this.db.prepare('INSERT OR REPLACE INTO layer_metrics VALUES (@runId, @step, @name, @layer, @value)');
    const param = this.db.prepare('INSERT OR REPLACE INTO param_metrics VALUES (@runId, @step, @name, @param, @value)');
    for (const r of batch.scalars ?? []) scalar.run(r);
    for (const r of batch.layers ?? []) layer.run(r);
    for (const r of batch.params ?? []) param.run(r);
  }

  deleteAfter(runId: string, step: number): void {
    for (const table of ['scalars', 'layer_metrics', 'param_metrics']) {
      this.db.prepare(`DELETE FROM ${table} WHERE run_id = ? AND step > ?`).run(runId, step);
    }
  }

  scalarColumns(runId: string, name: string): Columns {
    const n = (this.db.prepare('SELECT count(*) FROM scalars WHERE run_id = ? AND name = ?').pluck().get(runId, name) as number);
    return columns(this.db.prepare('SELECT step, value FROM scalars WHERE run_id = ? AND name = ? ORDER BY step').raw().iterate(runId, name) as Iterable<unknown[]>, n);
  }

  scalarTail(runId: string, name: string, n: number): { step: number; value: number }[] {
    const rows = this.db.prepare('SELECT step, value FROM scalars WHERE run_id = ? AND name = ? ORDER BY step DESC LIMIT ?')
      .all(runId, name, n) as { step: number; value: number | null }[];
    return rows.reverse().map((r) => ({ step: r.step, value: nan(r.value) }));
  }

  layerRows(runId: string, name: string): { step: number; layer: number; value: number }[] {
    const rows = this.db.prepare('SELECT step, layer, value FROM layer_metrics WHERE run_id = ? AND name = ? ORDER BY step, layer')
      .all(runId, name) as { step: number; layer: number; value: number | null }[];
    return rows.map((r) => ({ ...r, value: nan(r.value) }));
  }

  paramRows(runId: string, name: string): { step: number; param: string; value: number }[] {
    const rows = this.db.prepare('SELECT step, param, value FROM param_metrics WHERE run_id = ? AND name = ? ORDER BY step, param')
      .all(runId, name) as { step: number; param: string; value: number | null }[];
    return rows.map((r) => ({ ...r, value: nan(r.value) }));
  }

  layerSteps(runId: string, name: string): { count: number; first: number; last: number } | undefined {
    const r = this.db.prepare('SELECT count(DISTINCT step) AS count, min(step) AS first, max(step) AS last FROM layer_metrics WHERE run_id = ? AND name = ?')
      .get(runId, name) as { count: number; first: number | null; last: number | null };
    return r.count ? { count: r.count, first: r.first!, last: r.last! } : undefined;
  }

  layerAt(runId: string, name: string, step: number): Map<number, number> {
    const rows = this.db.prepare('SELECT layer, value FROM layer_metrics WHERE run_id = ? AND name = ? AND step = ?').raw().all(runId, name, step) as [number, number | null][];
    return new Map(rows.map(([l, v]) => [l, nan(v)]));
  }

  layerMeans(runId: string, name: string): Map<number, number> {
    const rows = this.db.prepare(`SELECT layer, ${FINITE_MEAN} FROM layer_metrics WHERE run_id = ? AND name = ? GROUP BY layer`).raw().all(runId, name) as [number, number | null][];
    return new Map(rows.map(([l, v]) => [l, nan(v)]));
  }

  lowestRatio(runId: string, name: string, a: number, b: number): { step: number; value: number } | undefined {
    return this.db.prepare(`SELECT x.step AS step, x.value / y.value AS value FROM layer_metrics x
      JOIN layer_metrics y ON y.run_id = x.run_id AND y.name = x.name AND y.step = x.step AND y.layer = @b
      WHERE x.run_id = @run AND x.name = @name AND x.layer = @a AND x.value / y.value IS NOT NULL
      ORDER BY value, step LIMIT 1`).get({ run: runId, name, a, b }) as { step: number; value: number } | undefined;
  }

  layerBuckets(runId: string, name: string, buckets: StepBuckets): BucketCell[] {
    const rows = this.db.prepare(`SELECT ${BUCKET} AS bin, layer AS row, avg(value) AS mean, max(value) AS max, count(*) AS count
      FROM layer_metrics WHERE run_id = @run AND name = @name GROUP BY bin, layer ORDER BY bin, row`).all({ run: runId, name, ...bucketArgs(buckets) }) as BucketCell[];
    return rows.map((r) => ({ ...r, mean: nan(r.mean), max: nan(r.max) }));
  }

  /** Step-major within a metric (the key's order): chunks are step ranges holding ~CHUNK_ROWS rows. */
  *chunks(runId: string): Generator<MetricChunk> {
    const tables = [['scalar', 'scalars', 'NULL'], ['layer', 'layer_metrics', 'layer'], ['param', 'param_metrics', 'param']] as const;
    for (const [kind, table, idx] of tables) {
      const names = this.db.prepare(`SELECT name, min(step), max(step), count(*) FROM ${table} WHERE run_id = ? GROUP BY name ORDER BY name`)
        .raw().all(runId) as [string, number, number, number][];
      const range = this.db.prepare(`SELECT step, ${idx}, value FROM ${table} WHERE run_id = ? AND name = ? AND step >= ? AND step < ? ORDER BY step, ${idx}`).raw();
      for (const [name, first, last, count] of names) {
        const width = Math.max(1, Math.floor(CHUNK_ROWS / Math.max(1, count / (last - first + 1))));
        for (let from = first; from <= last; from += width) {
          yield { kind, name, rows: range.all(runId, name, from, from + width) as [number, number | string | null, number | null][] };
        }
      }
    }
  }

  countRows(runId: string): { scalars: number; layers: number; params: number } {
    const count = (table: string) => this.db.prepare(`SELECT count(*) FROM ${table} WHERE run_id = ?`).pluck().get(runId) as number;
    return { scalars: count('scalars'), layers: count('layer_metrics'), params: count('param_metrics') };
  }
}

/** Version 2: names once in a dictionary, values keyed (series, step). */
export class CompactTables implements MetricTables {
  readonly layout = 'compact';
  /** Series ids by run, kind, name and index; series rows are never deleted, so ids stay valid. */
  private readonly ids = new Map<string, number>();

  constructor(private readonly db: Database.Database) {}

  write(batch: MetricBatch): void {
    const insert = this.db.prepare('INSERT OR REPLACE INTO points VALUES (?, ?, ?)');
    try {
      for (const r of batch.scalars ?? []) insert.run(this.seriesId(r.runId, KIND.scalar, r.name, 0), r.step, r.value);
      for (const r of batch.layers ?? []) insert.run(this.seriesId(r.runId, KIND.layer, r.name, r.layer), r.step, r.value);
      for (const r of batch.params ?? []) insert.run(this.seriesId(r.runId, KIND.param, r.name, this.nameId(r.param)), r.step, r.value);
    } catch (e) {
      this.ids.clear(); // the transaction rolls back the series rows it created
      throw e;
    }
  }

  private nameId(name: string): number {
    const key = `\0${name}`;
    let id = this.ids.get(key);
    if (id === undefined) {
      this.db.prepare('INSERT OR IGNORE INTO names (name) VALUES (?)').run(name);
      id = this.db.prepare('SELECT id FROM names WHERE name = ?').pluck().get(name) as number;
      this.ids.set(key, id);
    }
    return id;
  }

  private seriesId(runId: string, kind: number, name: string, idx: number): number {
    const key = `${runId}\0${kind}\0${name}\0${idx}`;
    let id = this.ids.get(key);
    if (id === undefined) {
      const nameId = this.nameId(name);
      this.db.prepare('INSERT OR IGNORE INTO series (run_id, kind, name, idx) VALUES (?, ?, ?, ?)').run(runId, kind, nameId, idx);
      id = this.db.prepare('SELECT id FROM series WHERE run_id = ? AND kind = ? AND name = ? AND idx = ?').pluck().get(runId, kind, nameId, idx) as number;
      this.ids.set(key, id);
    }
    return id;
  }

  /** The series of one run's metric (kind, name): [id, idx] by idx. */
  private seriesOf(runId: string, kind: number, name: string): [number, number][] {
    return this.db.prepare(`SELECT s.id, s.idx FROM series s JOIN names n ON n.id = s.name
      WHERE s.run_id = ? AND s.kind = ? AND n.name = ? ORDER BY s.idx`).raw().all(runId, kind, name) as [number, number][];
  }

  deleteAfter(runId: string, step: number): void {
    this.db.prepare('DELETE FROM points WHERE series IN (SELECT id FROM series WHERE run_id = ?) AND step > ?').run(runId, step);
  }

  scalarColumns(runId: string, name: string): Columns {
    const [s] = this.seriesOf(runId, KIND.scalar, name);
    if (!s) return { steps: new Float64Array(0), values: new Float64Array(0) };
    const n = this.db.prepare('SELECT count(*) FROM points WHERE series = ?').pluck().get(s[0]) as number;
    return columns(this.db.prepare('SELECT step, value FROM points WHERE series = ? ORDER BY step').raw().iterate(s[0]) as Iterable<unknown[]>, n);
  }

  scalarTail(runId: string, name: string, n: number): { step: number; value: number }[] {
    const [s] = this.seriesOf(runId, KIND.scalar, name);
    if (!s) return [];
    const rows = this.db.prepare('SELECT step, value FROM points WHERE series = ? ORDER BY step DESC LIMIT ?').all(s[0], n) as { step: number; value: number | null }[];
    return rows.reverse().map((r) => ({ step: r.step, value: nan(r.value) }));
  }

  private layerSql(select: string, tail = ''): string {
    return `SELECT ${select} FROM series s JOIN points p ON p.series = s.id
      WHERE s.run_id = @run AND s.kind = ${KIND.layer} AND s.name = (SELECT id FROM names WHERE name = @name) ${tail}`;
  }

  layerRows(runId: string, name: string): { step: number; layer: number; value: number }[] {
    const rows = this.db.prepare(this.layerSql('p.step AS step, s.idx AS layer, p.value AS value', 'ORDER BY p.step, s.idx'))
      .all({ run: runId, name }) as { step: number; layer: number; value: number | null }[];
    return rows.map((r) => ({ ...r, value: nan(r.value) }));
  }

  paramRows(runId: string, name: string): { step: number; param: string; value: number }[] {
    const rows = this.db.prepare(`SELECT p.step AS step, pn.name AS param, p.value AS value FROM series s
      JOIN names n ON n.id = s.name JOIN names pn ON pn.id = s.idx JOIN points p ON p.series = s.id
      WHERE s.run_id = ? AND s.kind = ${KIND.param} AND n.name = ? ORDER BY p.step, pn.name`)
      .all(runId, name) as { step: number; param: string; value: number | null }[];
    return rows.map((r) => ({ ...r, value: nan(r.value) }));
  }

  layerSteps(runId: string, name: string): { count: number; first: number; last: number } | undefined {
    // Every layer is written at the same steps (a diagnostic step writes them all): its first series tells.
    const [first] = this.seriesOf(runId, KIND.layer, name);
    if (!first) return undefined;
    const r = this.db.prepare('SELECT count(*) AS count, min(step) AS first, max(step) AS last FROM points WHERE series = ?')
      .get(first[0]) as { count: number; first: number | null; last: number | null };
    return r.count ? { count: r.count, first: r.first!, last: r.last! } : undefined;
  }

  layerAt(runId: string, name: string, step: number): Map<number, number> {
    const rows = this.db.prepare(this.layerSql('s.idx, p.value', 'AND p.step = @step')).raw().all({ run: runId, name, step }) as [number, number | null][];
    return new Map(rows.map(([l, v]) => [l, nan(v)]));
  }

  layerMeans(runId: string, name: string): Map<number, number> {
    const rows = this.db.prepare(this.layerSql(`s.idx, ${FINITE_MEAN}`, 'GROUP BY s.idx')).raw().all({ run: runId, name }) as [number, number | null][];
    return new Map(rows.map(([l, v]) => [l, nan(v)]));
  }

  lowestRatio(runId: string, name: string, a: number, b: number): { step: number; value: number } | undefined {
    const series = new Map(this.seriesOf(runId, KIND.layer, name).map(([id, idx]) => [idx, id]));
    if (!series.has(a) || !series.has(b)) return undefined;
    return this.db.prepare(`SELECT x.step AS step, x.value / y.value AS value FROM points x JOIN points y ON y.series = @b AND y.step = x.step
      WHERE x.series = @a AND x.value / y.value IS NOT NULL ORDER BY value, step LIMIT 1`)
      .get({ a: series.get(a), b: series.get(b) }) as { step: number; value: number } | undefined;
  }

  layerBuckets(runId: string, name: string, buckets: StepBuckets): BucketCell[] {
    const rows = this.db.prepare(this.layerSql(`${BUCKET} AS bin, s.idx AS row, avg(p.value) AS mean, max(p.value) AS max, count(*) AS count`, 'GROUP BY s.idx, bin ORDER BY bin, row'))
      .all({ run: runId, name, ...bucketArgs(buckets) }) as BucketCell[];
    return rows.map((r) => ({ ...r, mean: nan(r.mean), max: nan(r.max) }));
  }

  /** Series by series (metric name, then layer or parameter), each in step order: no sort of the points. */
  *chunks(runId: string): Generator<MetricChunk> {
    const kinds = [['scalar', KIND.scalar], ['layer', KIND.layer], ['param', KIND.param]] as const;
    const points = this.db.prepare('SELECT step, value FROM points WHERE series = @id AND step >= @from ORDER BY step LIMIT @limit').raw();
    for (const [kind, k] of kinds) {
      const series = this.db.prepare(`SELECT s.id, n.name, s.idx, pn.name FROM series s JOIN names n ON n.id = s.name
        LEFT JOIN names pn ON s.kind = ${KIND.param} AND pn.id = s.idx WHERE s.run_id = ? AND s.kind = ? ORDER BY n.name, pn.name, s.idx`)
        .raw().all(runId, k) as [number, string, number, string | null][];
      for (const [id, name, idx, param] of series) {
        const index = kind === 'scalar' ? null : kind === 'layer' ? idx : param;
        for (let from = -Infinity; ;) {
          const rows = points.all({ id, from: Number.isFinite(from) ? from : -9e15, limit: CHUNK_ROWS }) as [number, number | null][];
          if (rows.length) yield { kind, name, index, rows };
          if (rows.length < CHUNK_ROWS) break;
          from = rows[rows.length - 1]![0] + 1;
        }
      }
    }
  }

  countRows(runId: string): { scalars: number; layers: number; params: number } {
    const count = (kind: number) => this.db.prepare('SELECT count(*) FROM points WHERE series IN (SELECT id FROM series WHERE run_id = ? AND kind = ?)').pluck().get(runId, kind) as number;
    return { scalars: count(KIND.scalar), layers: count(KIND.layer), params: count(KIND.param) };
  }
}
