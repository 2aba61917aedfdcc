// The layer analyses (`normlab analyze`, training's `analyze_every`) as the
// report reads them: the `analyses` table of a run's own database, opened
// read-only (a reader never writes a file a worker owns), at one step per
// analysis — the latest one the run has, unless a step is asked for.
import Database from 'better-sqlite3';

/** Per-block values at one step: values[ℓ − 1] for blocks, values[ℓ] for hidden states h_0…h_L. */
export interface Profile {
  step: number;
  values: number[];
}

export interface RunAnalyses {
  /** matrix[n − 1][i] = angular distance between h_i and h_{i+n} (Gromov et al.), i = 0…L − n. */
  angular?: { step: number; matrix: number[][] };
  /** Validation-loss increase when block ℓ is the identity; `loss` is the whole model's on the same tokens. */
  layerDrop?: Profile & { loss?: number };
  /** Population variance of h_0 (embedding output) … h_L. */
  variance?: Profile;
  /** max |h_ℓ| of blocks 1…L ("massive activations"). */
  maxAbs?: Profile;
  /** cos(h_{ℓ−1}, h_ℓ) of blocks 1…L. */
  cosine?: Profile;
  /** Per-block gradient norm at the checkpoint, blocks 1…L. */
  gradNorm?: Profile;
}

export interface AnalysisRow {
  analysis: string;
  step: number;
  layer: number;
  n: number;
  param: string;
  value: number;
}

/** The analyses table of one database file, read-only; a file without one reads as empty. */
export class AnalysisReader {
  private constructor(private readonly db: Database.Database | null) {}

  static open(file: string): AnalysisReader {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'analyses'").get() !== undefined;
    if (has) return new AnalysisReader(db);
    db.close();
    return new AnalysisReader(null);
  }

  close(): void {
    this.db?.close();
  }

  steps(runId: string, analysis: string): number[] {
    if (!this.db) return [];
    return (this.db.prepare('SELECT DISTINCT step FROM analyses WHERE run_id = ? AND analysis = ? ORDER BY step')
      .all(runId, analysis) as { step: number }[]).map((r) => r.step);
  }

  rows(runId: string, analysis: string, step: number): AnalysisRow[] {
    if (!this.db) return [];
    const rows = this.db.prepare(`SELECT analysis, step, layer, n, param, value FROM analyses
      WHERE run_id = ? AND analysis = ? AND step = ? ORDER BY n, layer, param`).all(runId, analysis, step) as (AnalysisRow & { value: number | null })[];
    return rows.map((r) => ({ ...r, value: r.value ?? NaN }));
  }

  /** Every analysis row of one run (the long CSV), streamed. */
  *allRows(runId: string): Generator<AnalysisRow> {
    if (!this.db) return;
    const rows = this.db.prepare('SELECT analysis, step, layer, n, param, value FROM analyses WHERE run_id = ? ORDER BY analysis, step, n, layer, param')
      .iterate(runId) as Iterable<AnalysisRow & { value: number | null }>;
    for (const r of rows) yield { ...r, value: r.value ?? NaN };
  }
}

/**
 * One run's analyses: each at `step` when given (absent when the run has none
 * there), else at the latest step at which the run has that analysis.
 */
export function readRunAnalyses(reader: AnalysisReader, runId: string, layers: number, step?: number): RunAnalyses {
  const at = (analysis: string): number | undefined => {
    const steps = reader.steps(runId, analysis);
    return step === undefined ? steps.at(-1) : steps.includes(step) ? step : undefined;
  };
  const profile = (analysis: string, from: 0 | 1): Profile | undefined => {
    const s = at(analysis);
    if (s === undefined) return undefined;
    const values = Array<number>(layers + 1 - from).fill(NaN);
    for (const r of reader.rows(runId, analysis, s)) if (r.layer >= from && r.layer <= layers) values[r.layer - from] = r.value;
    return { step: s, values };
  };
  const out: RunAnalyses = {};
  const angularStep = at('angular');
  if (angularStep !== undefined) {
    const matrix = Array.from({ length: layers }, (_, k) => Array<number>(layers - k).fill(NaN));
    for (const r of reader.rows(runId, 'angular', angularStep)) {
      if (r.n >= 1 && r.n <= layers && r.layer >= 0 && r.layer <= layers - r.n) matrix[r.n - 1]![r.layer] = r.value;
    }
    out.angular = { step: angularStep, matrix };
  }
  const drop = profile('layer_drop', 1);
  if (drop) {
    const loss = reader.rows(runId, 'loss', drop.step)[0]?.value;
    out.layerDrop = { ...drop, ...(loss !== undefined && { loss }) };
  }
  const variance = profile('variance', 0);
  if (variance) out.variance = variance;
  const maxAbs = profile('max_abs', 1);
  if (maxAbs) out.maxAbs = maxAbs;
  const cosine = profile('cosine', 1);
  if (cosine) out.cosine = cosine;
  const gradNorm = profile('gradnorm', 1);
  if (gradNorm) out.gradNorm = gradNorm;
  return out;
}

export function hasAnalyses(a: RunAnalyses): boolean {
  return Object.keys(a).length > 0;
}
