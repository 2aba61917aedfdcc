// Runs the selected analyses on one checkpoint of a run and stores them under
// their sample set, skipping what the store already holds for that set unless forced.
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { RunConfig } from '../config/schema.ts';
import { batchOf, forwardAnalysis } from '../metrics/analysis.ts';
import { Model } from '../model/model.ts';
import type { AnalysisStore } from '../store/analyses.ts';
import { loadCheckpoint, stepDirs } from '../train/checkpoint.ts';
import { readRunConfig } from '../train/run.ts';
import { type AnalysisName, analyses } from './analyses.ts';
import type { SampleSet } from './sample-set.ts';

export class AnalyzeError extends Error {
  readonly exitCode = 2;
}

export interface AnalysisTarget {
  runId: string;
  runDir: string;
  config: RunConfig;
  checkpointDir: string;
  step: number;
  /** The store holding the run's metrics, where its analyses go (see runStoreFile). */
  db: string;
}

/**
 * A sweep run's own `<run>/run.sqlite` when there is one, else the config's
 * `output.db` (normlab train's shared database): the analyses sit beside the
 * run's metrics, whatever the working directory (output.db may be relative).
 */
export function runStoreFile(runDir: string, config: RunConfig): string {
  const own = join(runDir, 'run.sqlite');
  return existsSync(own) ? own : config.output.db;
}

/** A run id (under runs/), a run folder, or one checkpoint folder of a run. */
export function resolveTarget(target: string, step?: number): AnalysisTarget {
  const isCheckpoint = existsSync(join(target, 'state.json'));
  const runDir = isCheckpoint ? resolve(target, '..', '..') : existsSync(join(target, 'run.json')) ? resolve(target) : resolve('runs', target);
  if (!existsSync(join(runDir, 'run.json'))) {
    throw new AnalyzeError(`${target}: not a run id, run folder or checkpoint folder (no run.json found at ${runDir})`);
  }
  const config = readRunConfig(runDir);
  const checkpoints = stepDirs(join(runDir, 'checkpoints'));
  const chosen = isCheckpoint
    ? { dir: resolve(target), step: Number(basename(target).replace(/^step-/, '')) }
    : step !== undefined ? checkpoints.find((c) => c.step === step) : checkpoints[0];
  if (!chosen) {
    const have = checkpoints.map((c) => c.step).join(', ') || 'none';
    throw new AnalyzeError(`${runDir}: no checkpoint${step !== undefined ? ` at step ${step}` : ''} (checkpoints: ${have})`);
  }
  return { runId: basename(runDir), runDir, config, checkpointDir: chosen.dir, step: chosen.step, db: runStoreFile(runDir, config) };
}

/** The first `samples` rows of a list of [rows, width] batches, as one [samples, width] array. */
function firstRows<A extends Int32Array | Float32Array>(batches: A[], width: number, samples: number, make: (n: number) => A): A {
  const out = make(samples * width);
  let filled = 0;
  for (const b of batches) {
    const take = Math.min(samples - filled, b.length / width);
    out.set(b.subarray(0, take * width), filled * width);
    filled += take;
    if (filled === samples) break;
  }
  return out;
}

/** The first `samples` validation sequences of the run's data as one batch, with their loss weights under truncate batching. */
export function validationSample(
  validation: Int32Array[], seqLen: number, samples: number, weights?: Float32Array[],
): { tokens: Int32Array; weights?: Float32Array } {
  const available = validation.reduce((n, b) => n + b.length / (seqLen + 1), 0);
  if (available < samples) throw new AnalyzeError(`only ${available} validation sequences are available; lower --samples`);
  return {
    tokens: firstRows(validation, seqLen + 1, samples, (n) => new Int32Array(n)),
    ...(weights && { weights: firstRows(weights, seqLen, samples, (n) => new Float32Array(n)) }),
  };
}

export interface AnalyzeOptions {
  what: AnalysisName[];
  tokens: Int32Array;
  /** Loss weights [samples·T], 0 on padding (truncate batching). */
  weights?: Float32Array;
  samples: number;
  set: SampleSet;
  force: boolean;
}

/** Computes and stores each requested analysis; returns the names computed and those already stored. */
export function analyzeCheckpoint(target: AnalysisTarget, store: AnalysisStore, opts: AnalyzeOptions): { computed: AnalysisName[]; cached: AnalysisName[] } {
  const pending = opts.what.filter((a) => opts.force || !store.has(target.runId, target.step, primaryRows(a), opts.set.key));
  const cached = opts.what.filter((a) => !pending.includes(a));
  if (pending.length === 0) return { computed: [], cached };
  const { params } = loadCheckpoint(target.checkpointDir, { optimizer: false });
  const model = new Model(target.config.model);
  const T1 = target.config.train.seq_len + 1;
  const tokens = tf.tensor2d(opts.tokens, [opts.samples, T1], 'int32');
  const batch = { ...batchOf(opts.tokens, opts.samples), ...(opts.weights && { weights: opts.weights }) };
  try {
    const forward = forwardAnalysis(model, params, batch);
    for (const name of pending) {
      for (const [rows, values] of Object.entries(analyses[name]({ model, params, batch, tokens, forward }))) {
        store.write(target.runId, target.step, rows, opts.set, values);
      }
    }
  } finally {
    tf.dispose([tokens, batch.inputs, ...Object.values(params)]);
    model.dispose();
  }
  return { computed: pending, cached };
}

/** The row set whose presence marks an analysis as done. */
function primaryRows(name: AnalysisName): string {
  return { angular: 'angular', 'layer-drop': 'layer_drop', variance: 'variance', gradnorm: 'gradnorm', massive: 'max_abs', cosine: 'cosine' }[name];
}
