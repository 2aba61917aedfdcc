// The layer analyses (`normlab analyze`, training's `analyze_every`) as the
// report reads them: the `analyses` table of a run's own database, opened
// read-only (a reader never writes a file a worker owns), from one sample set
// per run (chooseSampleSet), at one step per analysis — the latest one the run
// has in that set, unless a step is asked for. Rows from before analyses were
// keyed (schema version 3) read as the unknown set.
import Database from 'better-sqlite3';
import { samplesOf, UNKNOWN_SET } from '../analyze/sample-set.ts';

/** Per-block values at one step: values[ℓ − 1] for blocks, values[ℓ] for hidden states h_0…h_L. */
export interface Profile {
  step: number;
  values: number[];
}

export interface RunAnalyses {
  /** The sample set every analysis below was computed on (absent when the run has none). */
  sampleSet?: string;
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
  sampleSet: string;
  step: number;
  layer: number;
  n: number;
  param: string;
  value: number;
}

/** The analyses table of one database file, read-only; a file without one reads as empty. */
export class AnalysisReader {
  /** The sample-set column, or the unknown set's constant in a table from before it. */
  private readonly set: string;

  private constructor(private readonly db: Database.Database | null, keyed = true) {
    this.set = keyed ? 'sample_set' : `'${UNKNOWN_SET}'`;
  }

  static open(file: string): AnalysisReader {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    const columns = (db.prepare('PRAGMA table_info(analyses)').all() as { name: string }[]).map((c) => c.name);
    if (columns.length) return new AnalysisReader(db, columns.includes('sample_set'));
    db.close();
    return new AnalysisReader(null);
  }

  close(): void {
    this.db?.close();
  }

  /** Each sample set of a run with the steps it has any analysis at. */
  sets(runId: string): Map<string, number[]> {
    const sets = new Map<string, number[]>();
    if (!this.db) return sets;
    const rows = this.db.prepare(`SELECT DISTINCT ${this.set} AS sampleSet, step FROM analyses WHERE run_id = ? ORDER BY step`)
      .all(runId) as { sampleSet: string; step: number }[];
    for (const r of rows) sets.set(r.sampleSet, [...(sets.get(r.sampleSet) ?? []), r.step]);
    return sets;
  }

  steps(runId: string, analysis: string, sampleSet: string): number[] {
    if (!this.db) return [];
    return (this.db.prepare(`SELECT DISTINCT step FROM analyses WHERE run_id = ? AND analysis = ? AND ${this.set} = ? ORDER BY step`)
      .all(runId, analysis, sampleSet) as { step: number }[]).map((r) => r.step);
  }

  rows(runId: string, analysis: string, step: number, sampleSet: string): AnalysisRow[] {
    if (!this.db) return [];
    const rows = this.db.prepare(`SELECT analysis, ${this.set} AS sampleSet, step, layer, n, param, value FROM analyses
      WHERE run_id = ? AND analysis = ? AND step = ? AND ${this.set} = ? ORDER BY n, layer, param`)
      .all(runId, analysis, step, sampleSet) as (AnalysisRow & { value: number | null })[];
    return rows.map((r) => ({ ...r, value: r.value ?? NaN }));
  }

  /** Every analysis row of one run (the long CSV), streamed. */
  *allRows(runId: string): Generator<AnalysisRow> {
    if (!this.db) return;
    const rows = this.db.prepare(`SELECT analysis, ${this.set} AS sampleSet, step, layer, n, param, value FROM analyses
      WHERE run_id = ? ORDER BY analysis, sampleSet, step, n, layer, param`).iterate(runId) as Iterable<AnalysisRow & { value: number | null }>;
    for (const r of rows) yield { ...r, value: r.value ?? NaN };
  }
}

/**
 * The set a report draws a run's analyses from: `requested` when given, else
 * the set with the most samples among those present at every analysed step of
 * the run, else the one at the most steps (then the most samples).
 */
export function chooseSampleSet(sets: Map<string, number[]>, requested?: string): string | undefined {
  if (requested !== undefined) return sets.has(requested) ? requested : undefined;
  const allSteps = new Set([...sets.values()].flat());
  const bySamples = (a: string, b: string) => samplesOf(b) - samplesOf(a) || a.localeCompare(b);
  const everywhere = [...sets.keys()].filter((k) => sets.get(k)!.length === allSteps.size).sort(bySamples);
  if (everywhere.length) return everywhere[0];
  return [...sets.keys()].sort((a, b) => sets.get(b)!.length - sets.get(a)!.length || bySamples(a, b))[0];
}

/**
 * One run's analyses from one sample set (chooseSampleSet): each at `step` when
 * given (absent when the run has none there), else at the latest step at which
 * the run has that analysis in that set.
 */
export function readRunAnalyses(reader: AnalysisReader, runId: string, layers: number, step?: number, requestedSet?: string): RunAnalyses {
  const set = chooseSampleSet(reader.sets(runId), requestedSet);
  if (set === undefined) return {};
  const at = (analysis: string): number | undefined => {
    const steps = reader.steps(runId, analysis, set);
    return step === undefined ? steps.at(-1) : steps.includes(step) ? step : undefined;
  };
  const profile = (analysis: string, from: 0 | 1): Profile | undefined => {
    const s = at(analysis);
    if (s === undefined) return undefined;
    const values = Array<number>(layers + 1 - from).fill(NaN);
    for (const r of reader.rows(runId, analysis, s, set)) if (r.layer >= from && r.layer <= layers) values[r.layer - from] = r.value;
    return { step: s, values };
  };
  const out: RunAnalyses = {};
  const angularStep = at('angular');
  if (angularStep !== undefined) {
    const matrix = Array.from({ length: layers }, (_, k) => Array<number>(layers - k).fill(NaN));
    for (const r of reader.rows(runId, 'angular', angularStep, set)) {
      if (r.n >= 1 && r.n <= layers && r.layer >= 0 && r.layer <= layers - r.n) matrix[r.n - 1]![r.layer] = r.value;
    }
    out.angular = { step: angularStep, matrix };
  }
  const drop = profile('layer_drop', 1);
  if (drop) {
    const loss = reader.rows(runId, 'loss', drop.step, set)[0]?.value;
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
  return hasAnalyses(out) ? { sampleSet: set, ...out } : out;
}

export function hasAnalyses(a: RunAnalyses): boolean {
  return Object.keys(a).some((k) => k !== 'sampleSet');
}
