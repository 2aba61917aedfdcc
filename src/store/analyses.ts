// Layer analyses in the run's SQLite file, keyed by (run, step, analysis) so
// each is computed once. A table of its own, beside the store's metric tables.
import Database from 'better-sqlite3';

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
    db.exec(`CREATE TABLE IF NOT EXISTS analyses (
      run_id TEXT NOT NULL, step INTEGER NOT NULL, analysis TEXT NOT NULL,
      layer INTEGER NOT NULL, n INTEGER NOT NULL, param TEXT NOT NULL, value REAL,
      PRIMARY KEY (run_id, analysis, step, layer, n, param))`);
    return new AnalysisStore(db);
  }

  close(): void {
    this.db.close();
  }

  has(runId: string, step: number, analysis: string): boolean {
    return this.db.prepare('SELECT 1 FROM analyses WHERE run_id = ? AND step = ? AND analysis = ? LIMIT 1').get(runId, step, analysis) !== undefined;
  }

  /** Replaces the rows of one (run, step, analysis) in one transaction. */
  write(runId: string, step: number, analysis: string, rows: AnalysisRow[]): void {
    const insert = this.db.prepare('INSERT INTO analyses VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM analyses WHERE run_id = ? AND step = ? AND analysis = ?').run(runId, step, analysis);
      for (const r of rows) insert.run(runId, step, analysis, r.layer, r.n, r.param, Number.isFinite(r.value) ? r.value : null);
    }).immediate();
  }

  read(runId: string, analysis: string, step?: number): (AnalysisRow & { step: number })[] {
    const rows = this.db.prepare(`SELECT step, layer, n, param, value FROM analyses
      WHERE run_id = ? AND analysis = ? AND (? IS NULL OR step = ?) ORDER BY step, n, layer, param`)
      .all(runId, analysis, step ?? null, step ?? null) as (AnalysisRow & { step: number; value: number | null })[];
    return rows.map((r) => ({ ...r, value: r.value ?? Number.NaN }));
  }

  steps(runId: string, analysis: string): number[] {
    return (this.db.prepare('SELECT DISTINCT step FROM analyses WHERE run_id = ? AND analysis = ? ORDER BY step').all(runId, analysis) as { step: number }[]).map((r) => r.step);
  }
}
