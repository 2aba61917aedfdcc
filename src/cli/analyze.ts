// normlab analyze <run | checkpoint dir> [--step N] [--what …] [--samples N] [--force]
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { ANALYSES, type AnalysisName } from '../analyze/analyses.ts';
import { analyzeCheckpoint, resolveTarget, validationSample } from '../analyze/checkpoint-analysis.ts';
import { sampleSetKey, setLabel } from '../analyze/sample-set.ts';
import { AnalysisStore } from '../store/analyses.ts';
import { RunStore } from '../store/store.ts';
import { trainingData } from '../train/run.ts';
import { startBackend, UsageError } from './common.ts';
import type { SetExitCode } from './main.ts';

export interface AnalyzeFlags {
  step?: string;
  what: string;
  samples: string;
  force?: boolean;
  backend: string;
}

function parseWhat(what: string): AnalysisName[] {
  const names = what.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(ANALYSES as readonly string[]).includes(n));
  if (unknown.length) throw new UsageError(`--what: unknown analysis ${unknown.join(', ')} (expected some of ${ANALYSES.join(', ')})`);
  return names as AnalysisName[];
}

function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag}: expected a positive integer, got "${value}"`);
  return n;
}

/** normlab analyze: its flags are declared in analyze-command.ts, which imports this module only when the command runs. */
export async function analyzeCommand(targetArg: string, flags: AnalyzeFlags, setExitCode: SetExitCode): Promise<void> {
  const what = parseWhat(flags.what);
  const samples = positiveInt('--samples', flags.samples);
  const target = resolveTarget(targetArg, flags.step === undefined ? undefined : positiveInt('--step', flags.step));
  const backend = await startBackend(flags.backend);
  const { train, output } = target.config;
  // Enough validation batches for the sample, whatever the run evaluated on; the data cache of the
  // run's own runs folder (<runs_dir>/<run>), not one under the working directory.
  const data = await trainingData({
    ...target.config, output: { ...output, runs_dir: dirname(target.runDir) },
    train: { ...train, eval_batches: Math.ceil(samples / train.batch_size) },
  });
  const sample = validationSample(data.validation, train.seq_len, samples, data.validationWeights);
  const key = sampleSetKey({ dataset: data.dataset, batching: target.config.data.batching, samples, seqLen: train.seq_len });
  // analyze sets no train.precision: its products are float32 on every backend.
  const set = { key, backend: backend.name, precision: 'fp32' };
  const sealed = isSealed(target.db);
  const store = AnalysisStore.open(target.db);
  try {
    const others = store.sets(target.runId, target.step).filter((s) => s !== key);
    const { computed, cached } = analyzeCheckpoint(target, store, { what, ...sample, samples, set, force: Boolean(flags.force) });
    console.log(`run ${target.runId} step ${target.step}, sample set "${key}": computed ${computed.join(', ') || 'nothing'}` +
      `${cached.length ? `; already stored for this set: ${cached.join(', ')} (--force recomputes)` : ''}`);
    if (others.length) console.log(`also stored at this step, kept apart: ${others.map((s) => `"${setLabel(s)}"`).join(', ')}`);
    printSummary(store, target.runId, target.step, key, target.config.model.n_layers);
  } finally {
    store.close();
  }
  if (sealed) reseal(target.db);
  setExitCode(0);
}

/** A sealed store uses a rollback journal: header bytes 18–19 (file format versions) are 1, not 2 (WAL). */
function isSealed(file: string): boolean {
  if (!existsSync(file)) return false;
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    return readSync(fd, header, 0, 20, 0) === 20 && header[18] === 1 && header[19] === 1;
  } finally {
    closeSync(fd);
  }
}

/** A finished sweep run stays one self-contained file after its analyses are added (docs/sweeps.md). */
function reseal(file: string): void {
  const store = RunStore.open(file);
  try {
    store.seal();
  } finally {
    store.close();
  }
  if (!isSealed(file)) console.error(`normlab: warning: ${file} could not be sealed again (another process has it open): it stays in WAL mode, with -wal and -shm files beside it`);
}

function printSummary(store: AnalysisStore, runId: string, step: number, set: string, layers: number): void {
  const column = (name: string) => new Map(store.read(runId, name, set, step).filter((r) => r.n === 0 && r.param === '').map((r) => [r.layer, r.value]));
  const columns = { 'output var': column('variance'), 'max |h|': column('max_abs'), 'cos(in,out)': column('cosine'), 'drop Δloss': column('layer_drop'), 'grad norm': column('gradnorm') };
  const adjacent = new Map(store.read(runId, 'angular', set, step).filter((r) => r.n === 1).map((r) => [r.layer + 1, r.value]));
  const shown = Object.entries({ ...columns, 'angular(ℓ−1,ℓ)': adjacent }).filter(([, values]) => values.size > 0);
  console.log(['block', ...shown.map(([name]) => name)].map((h) => h.padStart(16)).join(''));
  for (let layer = 1; layer <= layers; layer++) {
    console.log([String(layer), ...shown.map(([, v]) => (v.has(layer) ? v.get(layer)!.toPrecision(5) : '-'))].map((c) => c.padStart(16)).join(''));
  }
}
