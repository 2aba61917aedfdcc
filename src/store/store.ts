// The SQLite store: one row per run, and its metrics (scalars, per-layer and
// per-parameter values) in one of two layouts (schema.ts), read and written
// through one query layer (metrics.ts).
//
// Conventions:
// - Times are ISO 8601 UTC strings (readable in the sqlite3 shell, sortable as text).
// - Metric values: SQLite turns NaN into NULL, so a NULL value reads back as NaN;
//   ±Infinity is a REAL and round-trips as is.
// - Metric writes are INSERT OR REPLACE keyed on (run, step, name[, layer|param]):
//   a step replayed after a resume overwrites its rows instead of doubling them.
// - No global state: every store is one file path, so runs on several machines
//   can each write their own file and a report can open several.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { faultPoint } from '../train/faults.ts';
import type { RunConfig } from '../config/schema.ts';
import { CompactTables, TextTables, type BucketCell, type Columns, type MetricBatch, type MetricChunk, type MetricRow, type MetricTables, type StepBuckets } from './metrics.ts';
import { createSchema, ensureSchema, layoutOf, migrate, SCHEMA_VERSION, type Layout } from './schema.ts';

export type { BucketCell, Columns, LayerRow, MetricBatch, MetricChunk, MetricRow, ParamRow, ScalarRow, StepBuckets } from './metrics.ts';
export type { Layout } from './schema.ts';

export const RUN_STATUSES = ['running', 'finished', 'failed', 'diverged', 'killed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** A running run whose heartbeat is older than this is taken for dead (its worker was killed). */
export const LIVE_WITHIN_MS = 10 * 60_000;

/** Raised for misuse of the store (unknown run, impossible status change). */
export class StoreError extends Error {
  override name = 'StoreError';
}

export interface NewRun {
  id: string;
  name: string;
  sweep?: string | null;
  config: RunConfig;
  configHash: string;
  seed: number;
  backend: string;
  totalSteps: number;
  /** Versions of what produced the run (node, tfjs, normlab, git commit …). */
  versions: Record<string, string>;
  runDir: string;
  startedAt?: string;
}

export interface RunRecord extends Required<NewRun> {
  sweep: string | null;
  status: RunStatus;
  /** Last completed step; 0 before the first. */
  step: number;
  endedAt: string | null;
  heartbeatAt: string | null;
  error: string | null;
  divergedStep: number | null;
}

export interface StatusExtra {
  error?: string;
  divergedStep?: number;
  endedAt?: string;
}

interface RunColumns {
  id: string; name: string; sweep: string | null; config_json: string; config_hash: string;
  seed: number; status: RunStatus; backend: string; step: number; total_steps: number;
  started_at: string; ended_at: string | null; heartbeat_at: string | null; error: string | null;
  diverged_step: number | null; versions_json: string; run_dir: string;
}

export class RunStore {
  private readonly metrics: MetricTables;

  private constructor(private readonly db: Database.Database, readonly file: string, version: number) {
    this.metrics = layoutOf(version) === 'text' ? new TextTables(db) : new CompactTables(db);
  }

  /** Which metric layout this file holds (schema.ts). */
  get layout(): Layout {
    return this.metrics.layout;
  }

  /**
   * Opens (creating the file, its folders and tables if need be) the store at `file`.
   * `readonly` opens an existing file without writing to it (reports, listings:
   * a reader must not write a file that a worker on another machine owns).
   * `layout` applies to a new file only (default: the newest, compact).
   */
  static open(file: string, options: { readonly?: boolean; layout?: Layout } = {}): RunStore {
    if (options.readonly) return RunStore.openReadonly(file);
    mkdirSync(path.dirname(file), { recursive: true });
    const db = new Database(file);
    // busy_timeout first: the journal-mode switch itself can meet another writer.
    db.pragma('busy_timeout = 10000');
    db.pragma('journal_mode = WAL');
    // An existing file keeps its version (a run started in the text layout resumes
    // in it); a new one gets the newest. Only migrate() moves a file forward.
    const version = db.transaction(() => {
      const found = db.pragma('user_version', { simple: true }) as number;
      if (found > SCHEMA_VERSION) {
        throw new StoreError(`${file}: store schema version ${found} is newer than this normlab's ${SCHEMA_VERSION}`);
      }
      if (found === 0) return createSchema(db, options.layout);
      ensureSchema(db, found);
      return found;
    }).immediate();
    return new RunStore(db, file, version);
  }

  private static openReadonly(file: string): RunStore {
    let db: Database.Database, version: number;
    try {
      [db, version] = RunStore.readonlyDatabase(file);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'SQLITE_READONLY_ROLLBACK' && code !== 'SQLITE_READONLY_RECOVERY') throw e;
      // A writer killed mid-transaction left a hot journal (or an unrecovered
      // WAL) that only a read-write connection may roll back; SQLite does that
      // on opening and keeps what was committed. No live writer has such a file.
      const repair = new Database(file, { fileMustExist: true });
      try {
        repair.pragma('user_version');
      } finally {
        repair.close();
      }
      [db, version] = RunStore.readonlyDatabase(file);
    }
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new StoreError(`${file}: store schema version ${version} is newer than this normlab's ${SCHEMA_VERSION}`);
    }
    return new RunStore(db, file, version || SCHEMA_VERSION);
  }

  private static readonlyDatabase(file: string): [Database.Database, number] {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 10000');
      // A report opens every run's file and reads each once, in order: a 2 MiB page
      // cache per file (not better-sqlite3's 16) keeps a sweep's memory flat.
      db.pragma('cache_size = -2048');
      return [db, db.pragma('user_version', { simple: true }) as number];
    } catch (e) {
      db.close();
      throw e;
    }
  }

  close(): void {
    this.db.close();
  }

  /**
   * Leaves the file as one self-contained database (rollback journal, no -wal or
   * -shm beside it), so readers on other machines need no shared memory; opening
   * it for writing again switches it back to WAL. A no-op while others have it open.
   */
  seal(): void {
    try {
      this.db.pragma('journal_mode = DELETE');
    } catch (e) {
      if ((e as { code?: string }).code !== 'SQLITE_BUSY') throw e;
    }
  }

  createRun(r: NewRun): void {
    this.db.prepare(`
      INSERT INTO runs (id, name, sweep, config_json, config_hash, seed, status, backend, step,
                        total_steps, started_at, versions_json, run_dir)
      VALUES (@id, @name, @sweep, @config_json, @config_hash, @seed, 'running', @backend, 0,
              @total_steps, @started_at, @versions_json, @run_dir)
    `).run({
      id: r.id, name: r.name, sweep: r.sweep ?? null,
      config_json: JSON.stringify(r.config), config_hash: r.configHash, seed: r.seed,
      backend: r.backend, total_steps: r.totalSteps, started_at: r.startedAt ?? now(),
      versions_json: JSON.stringify(r.versions), run_dir: r.runDir,
    });
  }

  getRun(id: string): RunRecord | undefined {
    const row = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RunColumns | undefined;
    return row && toRecord(row);
  }

  listRuns(filter: { status?: RunStatus; sweep?: string } = {}): RunRecord[] {
    const rows = this.db.prepare(`
      SELECT * FROM runs
      WHERE (@status IS NULL OR status = @status) AND (@sweep IS NULL OR sweep = @sweep)
      ORDER BY started_at, id
    `).all({ status: filter.status ?? null, sweep: filter.sweep ?? null }) as RunColumns[];
    return rows.map(toRecord);
  }

  /**
   * Moves a run to `status`. A running run may end in any way; an ended run may
   * only go back to `running` (a resume), which clears how it ended.
   */
  setStatus(id: string, status: RunStatus, extra: StatusExtra = {}): void {
    faultPoint('store-write');
    this.db.transaction(() => {
      const run = this.getRun(id);
      if (!run) throw new StoreError(`no run ${id}`);
      if (run.status !== 'running' && status !== 'running') {
        throw new StoreError(`run ${id} has already ended (${run.status}); it cannot become ${status}`);
      }
      const ending = status !== 'running';
      this.db.prepare(`
        UPDATE runs SET status = @status, ended_at = @ended_at, error = @error, diverged_step = @diverged_step
        WHERE id = @id
      `).run({
        id, status,
        ended_at: ending ? extra.endedAt ?? now() : null,
        error: ending ? extra.error ?? null : null,
        diverged_step: ending ? extra.divergedStep ?? null : null,
      });
    }).immediate();
  }

  /** Records that the run is alive and has completed `step`. */
  heartbeat(id: string, step: number): void {
    const { changes } = this.db.prepare('UPDATE runs SET step = ?, heartbeat_at = ? WHERE id = ?').run(step, now(), id);
    if (changes === 0) throw new StoreError(`no run ${id}`);
  }

  /** Writes scalars, per-layer and per-parameter rows in one transaction. */
  writeMetrics(batch: MetricBatch): void {
    // IMMEDIATE takes the write lock up front, so a concurrent writer makes us wait
    // (busy_timeout) instead of failing with SQLITE_BUSY on the lock upgrade.
    faultPoint('store-write');
    this.db.transaction(() => this.metrics.write(batch)).immediate();
  }

  /** Drops every metric row after `step`, so a run resumed from a checkpoint at `step` rewrites them. */
  deleteMetricsAfter(runId: string, step: number): void {
    this.db.transaction(() => this.metrics.deleteAfter(runId, step)).immediate();
  }

  scalarSeries(runId: string, name: string): { step: number; value: number }[] {
    const { steps, values } = this.metrics.scalarColumns(runId, name);
    return Array.from(steps, (step, i) => ({ step, value: values[i]! }));
  }

  /** One scalar series as typed columns (for the reduction step: no object per point). */
  scalarColumns(runId: string, name: string): Columns {
    return this.metrics.scalarColumns(runId, name);
  }

  /** The last `n` points of a scalar series (listings: read only what is shown). */
  scalarTail(runId: string, name: string, n = 1): { step: number; value: number }[] {
    return this.metrics.scalarTail(runId, name, n);
  }

  lastScalar(runId: string, name: string): number | undefined {
    return this.metrics.scalarTail(runId, name, 1)[0]?.value;
  }

  layerSeries(runId: string, name: string): { step: number; layer: number; value: number }[] {
    return this.metrics.layerRows(runId, name);
  }

  paramSeries(runId: string, name: string): { step: number; param: string; value: number }[] {
    return this.metrics.paramRows(runId, name);
  }

  /** How many steps hold this per-layer metric, and the first and last of them. */
  layerSteps(runId: string, name: string): { count: number; first: number; last: number } | undefined {
    return this.metrics.layerSteps(runId, name);
  }

  /** A per-layer metric at one step, by 1-based layer. */
  layerAt(runId: string, name: string, step: number): Map<number, number> {
    return this.metrics.layerAt(runId, name, step);
  }

  /** A per-layer metric's mean over steps (finite values only), by layer. */
  layerMeans(runId: string, name: string): Map<number, number> {
    return this.metrics.layerMeans(runId, name);
  }

  /** Where layer a's value over layer b's is smallest over training. */
  lowestRatio(runId: string, name: string, a: number, b: number): { step: number; value: number } | undefined {
    return this.metrics.lowestRatio(runId, name, a, b);
  }

  /** Mean, max and count of a per-layer metric per step bucket and layer, aggregated in SQL. */
  layerBuckets(runId: string, name: string, buckets: StepBuckets): BucketCell[] {
    return this.metrics.layerBuckets(runId, name, buckets);
  }

  /** Every metric row of one run, kind by kind, grouped by metric name, for exports; `index` is the layer, the parameter, or null. */
  *metricRows(runId: string): Generator<MetricRow> {
    for (const c of this.metrics.chunks(runId)) {
      if (c.index !== undefined) for (const [step, value] of c.rows) yield { kind: c.kind, step, name: c.name, index: c.index, value: value ?? NaN };
      else for (const [step, index, value] of c.rows) yield { kind: c.kind, step, name: c.name, index, value: value ?? NaN };
    }
  }

  /** The same rows in chunks of ~10,000 (one SQLite call each): the fast path for long exports. */
  metricChunks(runId: string): Generator<MetricChunk> {
    return this.metrics.chunks(runId);
  }

  /** Rows per metric table for one run. */
  countRows(runId: string): { scalars: number; layers: number; params: number } {
    return this.metrics.countRows(runId);
  }

  /**
   * Repacks the file (VACUUM) so a finished run leaves no half-empty pages; a
   * no-op while another connection is using it.
   */
  compact(): void {
    try {
      this.db.exec('VACUUM');
    } catch (e) {
      if ((e as { code?: string }).code !== 'SQLITE_BUSY' && (e as { code?: string }).code !== 'SQLITE_LOCKED') throw e;
    }
  }

  /** Runs whose worker looks alive: running, with a heartbeat (or start) within LIVE_WITHIN_MS. */
  liveRuns(now = Date.now()): RunRecord[] {
    return this.listRuns({ status: 'running' }).filter((r) => now - Date.parse(r.heartbeatAt ?? r.startedAt) < LIVE_WITHIN_MS);
  }

  /**
   * Moves an existing file to the newest schema version (normlab store migrate)
   * and repacks it. Refuses a file a live run is writing. Returns the steps taken
   * (none when it is current).
   */
  static migrateFile(file: string, now = Date.now()): string[] {
    const store = RunStore.open(file, {});
    try {
      const live = store.liveRuns(now);
      if (live.length) {
        throw new StoreError(`${file}: run ${live.map((r) => r.id).join(', ')} is writing this store (heartbeat within ${LIVE_WITHIN_MS / 60_000} minutes); migrate it once the run has ended or been stopped`);
      }
      const version = store.db.pragma('user_version', { simple: true }) as number;
      if (version >= SCHEMA_VERSION) return [];
      const done = migrate(store.db, version);
      store.db.exec('VACUUM');
      store.seal();
      return done;
    } finally {
      store.close();
    }
  }
}

/** Gets each batch once the store has committed it (e.g. TensorBoard events written live). */
export interface MetricSink {
  write(batch: MetricBatch): void;
}

/**
 * Collects metric rows for one run and writes them in batched transactions
 * (every `flushRows` rows, or on flush()), so training does not commit per step.
 * Flush before a checkpoint is written, so the store holds everything it covers.
 */
export class MetricBuffer {
  private batch: Required<MetricBatch> = { scalars: [], layers: [], params: [] };

  constructor(private readonly store: RunStore, readonly runId: string, private readonly flushRows = 1000, private readonly sink?: MetricSink) {}

  get pending(): number {
    return this.batch.scalars.length + this.batch.layers.length + this.batch.params.length;
  }

  scalar(step: number, name: string, value: number): void {
    this.batch.scalars.push({ runId: this.runId, step, name, value });
    this.maybeFlush();
  }

  layer(step: number, name: string, layer: number, value: number): void {
    this.batch.layers.push({ runId: this.runId, step, name, layer, value });
    this.maybeFlush();
  }

  param(step: number, name: string, param: string, value: number): void {
    this.batch.params.push({ runId: this.runId, step, name, param, value });
    this.maybeFlush();
  }

  flush(): void {
    if (this.pending === 0) return;
    this.store.writeMetrics(this.batch);
    this.sink?.write(this.batch);
    this.batch = { scalars: [], layers: [], params: [] };
  }

  private maybeFlush(): void {
    if (this.pending >= this.flushRows) this.flush();
  }
}

function toRecord(r: RunColumns): RunRecord {
  return {
    id: r.id, name: r.name, sweep: r.sweep,
    config: JSON.parse(r.config_json) as RunConfig, configHash: r.config_hash,
    seed: r.seed, status: r.status, backend: r.backend, step: r.step, totalSteps: r.total_steps,
    startedAt: r.started_at, endedAt: r.ended_at, heartbeatAt: r.heartbeat_at,
    error: r.error, divergedStep: r.diverged_step,
    versions: JSON.parse(r.versions_json) as Record<string, string>, runDir: r.run_dir,
  };
}

function now(): string {
  return new Date().toISOString();
}
