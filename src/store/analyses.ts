// Layer analyses in the run's SQLite file, keyed by (run, step, analysis,
// sample set) so each is computed once per set of sequences (src/analyze/sample-set.ts).
// A table of its own beside the metric tables; its shape is in schema.ts.
import Database from 'better-sqlite3';
import type { SampleSet } from '../analyze/sample-set.ts';
import { ensureAnalyses } from './schema.ts';

export interface AnalysisRow {
  /** 1-based block (0 for h_0 or a whole-model value), or the start index i of an angular pair. */
  layer: number;
  /** The offset n of an angular pair h_i, h_{i+n}; 0 otherwise. */
  n: number;
  /** Parameter key for per-parameter values; '' otherwise. */
  param: string;
  value: number;
}

export const row = (layer: number, value: number, extra: Partial<AnalysisRow> = {}): AnalysisRow =>
  ({ layer, n: 0, param: '', value, ...extra });

export class AnalysisStore {
  private constructor(private readonly db: Database.Database) {}

  static open(file: string): AnalysisStore {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 10000');
    db.transaction(() => ensureAnalyses(db)).immediate();
    return new AnalysisStore(db);
  }

  close(): void {
    this.db.close();
  }

  has(runId: string, step: number, analysis: string, sampleSet: string): boolean {
    return this.db.prepare('SELECT 1 FROM analyses WHERE run_id = ? AND step = ? AND analysis = ? AND sample_set = ? LIMIT 1')
      .get(runId, step, analysis, sampleSet) !== undefined;
  }

  /** Replaces the rows of one (run, step, analysis, sample set) in one transaction; other sets' rows stay. */
  write(runId: string, step: number, analysis: string, set: SampleSet, rows: AnalysisRow[]): void {
    const insert = this.db.prepare(`INSERT INTO analyses (run_id, step, analysis, sample_set, layer, n, param, value, backend, precision)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM analyses WHERE run_id = ? AND step = ? AND analysis = ? AND sample_set = ?').run(runId, step, analysis, set.key);
      for (const r of rows) {
        insert.run(runId, step, analysis, set.key, r.layer, r.n, r.param, Number.isFinite(r.value) ? r.value : null, set.backend, set.precision);
      }
    }).immediate();
  }

  read(runId: string, analysis: string, sampleSet: string, step?: number): (AnalysisRow & { step: number })[] {
    const rows = this.db.prepare(`SELECT step, layer, n, param, value FROM analyses
      WHERE run_id = ? AND analysis = ? AND sample_set = ? AND (? IS NULL OR step = ?) ORDER BY step, n, layer, param`)
      .all(runId, analysis, sampleSet, step ?? null, step ?? null) as (AnalysisRow & { step: number; value: number | null })[];
    return rows.map((r) => ({ ...r, value: r.value ?? Number.NaN }));
  }

  /** The sample sets stored for one (run, step). */
  sets(runId: string, step: number): string[] {
    return (this.db.prepare('SELECT DISTINCT sample_set FROM analyses WHERE run_id = ? AND step = ? ORDER BY sample_set')
      .all(runId, step) as { sample_set: string }[]).map((r) => r.sample_set);
  }
}
