// What an analysis was computed on (#21): its sample set. The key names the
// data (the prepared dataset's key: sources, tokenizer, split), how the
// sequences were chosen (the first N validation windows of the run's batching:
// training's `analyze_every` takes its first validation batch, the same
// windows as `normlab analyze --samples <batch_size>`), N and the sequence
// length. A stored analysis is reused only under an equal key. Backend and
// precision are recorded beside the key, not in it, so `analyze` on one backend
// matches what training stored on another.

export interface SampleSelection {
  /** The prepared dataset's key (DatasetMeta.key). */
  dataset: string;
  batching: string;
  samples: number;
  seqLen: number;
}

/** The key, and what it was computed with. */
export interface SampleSet {
  key: string;
  backend: string;
  precision: string;
}

/** Rows stored before analyses were keyed. */
export const UNKNOWN_SET = '';

export function sampleSetKey(s: SampleSelection): string {
  return `validation first ${s.samples} (${s.batching}) seq ${s.seqLen} data ${s.dataset.slice(0, 16)}`;
}

/** N of a key; 0 for the unknown set. */
export function samplesOf(key: string): number {
  return Number(/^validation first (\d+) /.exec(key)?.[1] ?? 0);
}

/** How a set is named in tables and captions. */
export function setLabel(key: string): string {
  return key === UNKNOWN_SET ? 'sample set unknown' : key;
}
