// The store's schema versions, in one place: what each version's tables are,
// which metric layout it holds, and the steps that migrate a file from one
// version to the next. See docs/store.md for the tables and views.
//
//   1  text layout: scalars / layer_metrics / param_metrics, one row per value
//      repeating run id, metric and parameter names as text (~78 bytes a value).
//   2  compact layout: names (a dictionary), series (run × metric × layer or
//      parameter) and points (series, step, value) keyed by integers
//      (~20 bytes a value); views named like version 1's tables give its shape.
//   3  analyses keyed by sample set (#21): each analysis row names what it was
//      computed on (sample_set) and records backend and precision beside it.
//
// A new file gets the newest version. An existing file keeps its version when a
// run writes it (a run started in the text layout resumes in it); only
// `normlab store migrate` (migrate() below) moves a file forward.
// Adding a version: append its step to MIGRATIONS, raise SCHEMA_VERSION, and
// make createSchema build it directly. The analyses table is also brought to
// its keyed shape whenever analyses are written (ensureAnalyses), whatever the
// file's version: it is independent of the metric layout.
import type Database from 'better-sqlite3';

export type Layout = 'text' | 'compact';

export const SCHEMA_VERSION = 3;

const RUNS = `
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
);`;

// The metric keys put `name` before `step` (same uniqueness as (run, step, name)),
// so reading one series is a range scan of the key.
const TEXT_METRICS = `
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
) WITHOUT ROWID;`;

/** Series kinds in the compact layout; idx is 0, the 1-based layer, or the parameter's names.id. */
export const KIND = { scalar: 0, layer: 1, param: 2 } as const;

// points is keyed (series, step): one series is a range scan, and a row costs
// ~20 bytes. Rows arrive step by step across series, so pages fill to ~80 %
// while a run writes; compact() at the end of a run repacks them.
const COMPACT_METRICS = `
CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS series (
  id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, kind INTEGER NOT NULL, name INTEGER NOT NULL, idx INTEGER NOT NULL,
  UNIQUE (run_id, kind, name, idx)
);
CREATE TABLE IF NOT EXISTS points (
  series INTEGER NOT NULL, step INTEGER NOT NULL, value REAL,
  PRIMARY KEY (series, step)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS scalars AS
  SELECT s.run_id, p.step, n.name, p.value
  FROM series s JOIN names n ON n.id = s.name JOIN points p ON p.series = s.id WHERE s.kind = ${KIND.scalar};
CREATE VIEW IF NOT EXISTS layer_metrics AS
  SELECT s.run_id, p.step, n.name, s.idx AS layer, p.value
  FROM series s JOIN names n ON n.id = s.name JOIN points p ON p.series = s.id WHERE s.kind = ${KIND.layer};
CREATE VIEW IF NOT EXISTS param_metrics AS
  SELECT s.run_id, p.step, n.name, pn.name AS param, p.value
  FROM series s JOIN names n ON n.id = s.name JOIN names pn ON pn.id = s.idx JOIN points p ON p.series = s.id
  WHERE s.kind = ${KIND.param};`;

// sample_set: what the analysis was computed on (src/analyze/sample-set.ts);
// '' for rows written before version 3 ("sample set unknown").
const ANALYSES = `
CREATE TABLE IF NOT EXISTS analyses (
  run_id TEXT NOT NULL, step INTEGER NOT NULL, analysis TEXT NOT NULL, sample_set TEXT NOT NULL,
  layer INTEGER NOT NULL, n INTEGER NOT NULL, param TEXT NOT NULL, value REAL, backend TEXT, precision TEXT,
  PRIMARY KEY (run_id, analysis, sample_set, step, layer, n, param)
);`;

/** Whether the file's analyses table (if any) has the sample-set key. */
export function analysesKeyed(db: Database.Database): boolean {
  const columns = db.prepare('PRAGMA table_info(analyses)').all() as { name: string }[];
  return columns.length === 0 || columns.some((c) => c.name === 'sample_set');
}

/** Creates the analyses table, or rebuilds an unkeyed one with its rows as "sample set unknown". */
export function ensureAnalyses(db: Database.Database): void {
  if (analysesKeyed(db)) return void db.exec(ANALYSES);
  db.exec(`ALTER TABLE analyses RENAME TO old_analyses; ${ANALYSES}
    INSERT INTO analyses (run_id, step, analysis, sample_set, layer, n, param, value)
      SELECT run_id, step, analysis, '', layer, n, param, value FROM old_analyses;
    DROP TABLE old_analyses;`);
}

export function layoutOf(version: number): Layout {
  return version === 1 ? 'text' : 'compact';
}

/** The tables of a new, empty file: the newest version, or version 1 for the text layout (benchmarks, tests of old stores). */
export function createSchema(db: Database.Database, layout: Layout = 'compact'): number {
  const version = layout === 'text' ? 1 : SCHEMA_VERSION;
  ensureSchema(db, version);
  db.pragma(`user_version = ${version}`);
  return version;
}

/** Makes sure an existing file at `version` has its tables (a version-1 file gets version 1's). */
export function ensureSchema(db: Database.Database, version: number): void {
  db.exec(RUNS + (layoutOf(version) === 'text' ? TEXT_METRICS : COMPACT_METRICS));
  if (version >= 3) ensureAnalyses(db);
}

interface Migration {
  /** The version this step produces (from the one before). */
  to: number;
  what: string;
  up(db: Database.Database): void;
}

const MIGRATIONS: Migration[] = [
  {
    to: 2,
    what: 'text metric tables → names, series, points and views',
    up(db) {
      db.exec(`ALTER TABLE scalars RENAME TO old_scalars;
        ALTER TABLE layer_metrics RENAME TO old_layer_metrics;
        ALTER TABLE param_metrics RENAME TO old_param_metrics;`);
      db.exec(COMPACT_METRICS);
      // CROSS JOIN keeps the old rows as the outer loop (one index lookup each);
      // SQLite would otherwise scan a whole metric per parameter.
      db.exec(`
        INSERT OR IGNORE INTO names (name)
          SELECT DISTINCT name FROM old_scalars UNION SELECT DISTINCT name FROM old_layer_metrics
          UNION SELECT DISTINCT name FROM old_param_metrics UNION SELECT DISTINCT param FROM old_param_metrics;
        INSERT INTO series (run_id, kind, name, idx)
          SELECT DISTINCT o.run_id, ${KIND.scalar}, n.id, 0 FROM old_scalars o JOIN names n ON n.name = o.name;
        INSERT INTO series (run_id, kind, name, idx)
          SELECT DISTINCT o.run_id, ${KIND.layer}, n.id, o.layer FROM old_layer_metrics o JOIN names n ON n.name = o.name;
        INSERT INTO series (run_id, kind, name, idx)
          SELECT DISTINCT o.run_id, ${KIND.param}, n.id, pn.id FROM old_param_metrics o
          JOIN names n ON n.name = o.name JOIN names pn ON pn.name = o.param;
        INSERT INTO points (series, step, value)
          SELECT s.id, o.step, o.value FROM old_scalars o CROSS JOIN names n ON n.name = o.name
          CROSS JOIN series s ON s.run_id = o.run_id AND s.kind = ${KIND.scalar} AND s.name = n.id AND s.idx = 0;
        INSERT INTO points (series, step, value)
          SELECT s.id, o.step, o.value FROM old_layer_metrics o CROSS JOIN names n ON n.name = o.name
          CROSS JOIN series s ON s.run_id = o.run_id AND s.kind = ${KIND.layer} AND s.name = n.id AND s.idx = o.layer;
        INSERT INTO points (series, step, value)
          SELECT s.id, o.step, o.value FROM old_param_metrics o CROSS JOIN names n ON n.name = o.name CROSS JOIN names pn ON pn.name = o.param
          CROSS JOIN series s ON s.run_id = o.run_id AND s.kind = ${KIND.param} AND s.name = n.id AND s.idx = pn.id;
        DROP TABLE old_scalars; DROP TABLE old_layer_metrics; DROP TABLE old_param_metrics;`);
    },
  },
  {
    to: 3,
    what: 'analyses keyed by sample set (earlier rows: sample set unknown)',
    up: ensureAnalyses,
  },
];

/** Runs every step from `version` to SCHEMA_VERSION in one transaction; returns what was done. */
export function migrate(db: Database.Database, version: number): string[] {
  const steps = MIGRATIONS.filter((m) => m.to > version);
  db.transaction(() => {
    for (const m of steps) {
      m.up(db);
      db.pragma(`user_version = ${m.to}`);
    }
  }).immediate();
  return steps.map((m) => `version ${m.to - 1} → ${m.to}: ${m.what}`);
}
