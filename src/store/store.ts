// The SQLite store: one row per run, and its metrics in three long tables
// (scalars, per-layer values, per-parameter values) that the report reads.
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
import type { RunConfig } from '../config/schema.ts';

export const RUN_STATUSES = ['running', 'finished', 'failed', 'diverged', 'killed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

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

export interface ScalarRow { runId: string; step: number; name: string; value: number }
export interface LayerRow { runId: string; step: number; name: string; layer: number; value: number }
export interface ParamRow { runId: string; step: number; name: string; param: string; value: number }

export interface MetricBatch {
  scalars?: ScalarRow[];
  layers?: LayerRow[];
  params?: ParamRow[];
}

export interface StatusExtra {
  error?: string;
  divergedStep?: number;
  endedAt?: string;
}

/** Bumped when the tables change incompatibly; a newer file is refused, not misread. */
const SCHEMA_VERSION = 1;

// The metric keys put `name` before `step` (same uniqueness as (run, step, name)),
// so reading one series is a range scan of the key.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  sweep TEXT,
  config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  seed INTEGER NOT NULL,
  status TEXT NOT NULL,
  backend TEXT NOT NULL,
  step INTEGER NOT NULL DEFAULT 0,
  total_steps INTEGER NOT NULL,
  started_at TEXT NOT NULL,
  ended_at TEXT,
  heartbeat_at TEXT,
  error TEXT,
  diverged_step INTEGER,
  versions_json TEXT NOT NULL,
  run_dir TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scalars (
  run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
  PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS layer_metrics (
  run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, layer INTEGER NOT NULL, value REAL,
  PRIMARY KEY (run_id, name, step, layer)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS param_metrics (
  run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, param TEXT NOT NULL, value REAL,
  PRIMARY KEY (run_id, name, step, param)
) WITHOUT ROWID;
`;

const METRIC_TABLES = ['scalars', 'layer_metrics', 'param_metrics'] as const;

interface RunColumns {
  id: string; name: string; sweep: string | null; config_json: string; config_hash: string;
  seed: number; status: RunStatus; backend: string; step: number; total_steps: number;
  started_at: string; ended_at: string | null; heartbeat_at: string | null; error: string | null;
  diverged_step: number | null; versions_json: string; run_dir: string;
}

export class RunStore {
  private constructor(private readonly db: Database.Database, readonly file: string) {}

  /**
   * Opens (creating the file, its folders and tables if need be) the store at `file`.
   * `readonly` opens an existing file without writing to it (reports, listings:
   * a reader must not write a file that a worker on another machine owns).
   */
  static open(file: string, options: { readonly?: boolean } = {}): RunStore {
    if (options.readonly) return RunStore.openReadonly(file);
    mkdirSync(path.dirname(file), { recursive: true });
    const db = new Database(file);
    // busy_timeout first: the journal-mode switch itself can meet another writer.
    db.pragma('busy_timeout = 10000');
    db.pragma('journal_mode = WAL');
    db.transaction(() => {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new StoreError(`${file}: store schema version ${version} is newer than this normlab's ${SCHEMA_VERSION}`);
      }
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
    return new RunStore(db, file);
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
    return new RunStore(db, file);
  }

  private static readonlyDatabase(file: string): [Database.Database, number] {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 10000');
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
    const scalar = this.db.prepare('INSERT OR REPLACE INTO scalars VALUES (@runId, @step, @name, @value)');
    const layer = this.db.prepare('INSERT OR REPLACE INTO layer_metrics VALUES (@runId, @step, @name, @layer, @value)');
    const param = this.db.prepare('INSERT OR REPLACE INTO param_metrics VALUES (@runId, @step, @name, @param, @value)');
    // IMMEDIATE takes the write lock up front, so a concurrent writer makes us wait
    // (busy_timeout) instead of failing with SQLITE_BUSY on the lock upgrade.
    this.db.transaction(() => {
      for (const r of batch.scalars ?? []) scalar.run(r);
      for (const r of batch.layers ?? []) layer.run(r);
      for (const r of batch.params ?? []) param.run(r);
    }).immediate();
  }

  /** Drops every metric row after `step`, so a run resumed from a checkpoint at `step` rewrites them. */
  deleteMetricsAfter(runId: string, step: number): void {
    this.db.transaction(() => {
      for (const table of METRIC_TABLES) {
        this.db.prepare(`DELETE FROM ${table} WHERE run_id = ? AND step > ?`).run(runId, step);
      }
    }).immediate();
  }

  scalarSeries(runId: string, name: string): { step: number; value: number }[] {
    const rows = this.db.prepare('SELECT step, value FROM scalars WHERE run_id = ? AND name = ? ORDER BY step')
      .all(runId, name) as { step: number; value: number | null }[];
    return rows.map((r) => ({ ...r, value: r.value ?? NaN }));
  }

  layerSeries(runId: string, name: string): { step: number; layer: number; value: number }[] {
    const rows = this.db.prepare('SELECT step, layer, value FROM layer_metrics WHERE run_id = ? AND name = ? ORDER BY step, layer')
      .all(runId, name) as { step: number; layer: number; value: number | null }[];
    return rows.map((r) => ({ ...r, value: r.value ?? NaN }));
  }

  paramSeries(runId: string, name: string): { step: number; param: string; value: number }[] {
    const rows = this.db.prepare('SELECT step, param, value FROM param_metrics WHERE run_id = ? AND name = ? ORDER BY step, param')
      .all(runId, name) as { step: number; param: string; value: number | null }[];
    return rows.map((r) => ({ ...r, value: r.value ?? NaN }));
  }

  /** Every metric row of one run, table by table, for exports; `index` is the layer, the parameter, or null. */
  *metricRows(runId: string): Generator<{ kind: 'scalar' | 'layer' | 'param'; step: number; name: string; index: number | string | null; value: number }> {
    const queries = [
      ['scalar', 'SELECT step, name, NULL AS idx, value FROM scalars WHERE run_id = ? ORDER BY name, step'],
      ['layer', 'SELECT step, name, layer AS idx, value FROM layer_metrics WHERE run_id = ? ORDER BY name, step, layer'],
      ['param', 'SELECT step, name, param AS idx, value FROM param_metrics WHERE run_id = ? ORDER BY name, step, param'],
    ] as const;
    for (const [kind, sql] of queries) {
      for (const r of this.db.prepare(sql).iterate(runId) as Iterable<{ step: number; name: string; idx: number | string | null; value: number | null }>) {
        yield { kind, step: r.step, name: r.name, index: r.idx, value: r.value ?? NaN };
      }
    }
  }

  /** Rows per metric table for one run. */
  countRows(runId: string): { scalars: number; layers: number; params: number } {
    const count = (table: string) =>
      (this.db.prepare(`SELECT count(*) AS n FROM ${table} WHERE run_id = ?`).get(runId) as { n: number }).n;
    return { scalars: count('scalars'), layers: count('layer_metrics'), params: count('param_metrics') };
  }
}

/**
 * Collects metric rows for one run and writes them in batched transactions
 * (every `flushRows` rows, or on flush()), so training does not commit per step.
 * Flush before a checkpoint is written, so the store holds everything it covers.
 */
export class MetricBuffer {
  private batch: Required<MetricBatch> = { scalars: [], layers: [], params: [] };

  constructor(private readonly store: RunStore, readonly runId: string, private readonly flushRows = 1000) {}

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
