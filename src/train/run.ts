// One run from a resolved config: its folder, its registry row, its data, the
// loop, and how it ended. Used by `normlab train` and by sweep workers.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import pino, { type Logger } from 'pino';
import { configHash } from '../config/hash.ts';
import { pathUnder } from '../config/names.ts';
import type { RunConfig } from '../config/schema.ts';
import { describeFile } from '../data/hf.ts';
import { tokenizerInfo } from '../data/tokenizers.ts';
import { trainingBatches } from '../data/training.ts';
import { parameterCount } from '../model/model.ts';
import { MetricBuffer, type RunStore } from '../store/store.ts';
import { writeFileDurably } from '../model/safetensors.ts';
import { cheapAnalysisRows } from '../analyze/analyses.ts';
import type { ForwardAnalysis } from '../metrics/analysis.ts';
import { type SampleSet, sampleSetKey } from '../analyze/sample-set.ts';
import { AnalysisStore } from '../store/analyses.ts';
import { LiveEvents } from '../tensorboard/runs.ts';
import { stepDirs } from './checkpoint.ts';
import { checkFitsBackend } from './memory.ts';
import { applyPrecision } from './precision.ts';
import { train, type TrainHooks, type TrainingData, type TrainOutcome } from './trainer.ts';
import { onlyRankZero, rankRows, type Replica, silentLog } from '../distributed/replica.ts';

export interface RunIdentity {
  id: string;
  dir: string;
  hash: string;
}

export function runIdentity(config: RunConfig): RunIdentity {
  const hash = configHash(config);
  const id = `${config.name}-${hash.slice(0, 10)}`;
  return { id, hash, dir: pathUnder(config.output.runs_dir, id) };
}

/** The resolved config saved with a run, so `--resume <run>` needs nothing else. */
export function readRunConfig(runDir: string): RunConfig {
  const file = join(runDir, 'run.json');
  if (!existsSync(file)) throw Object.assign(new Error(`${runDir}: not a normlab run folder (no run.json)`), { exitCode: 2 });
  return JSON.parse(readFileSync(file, 'utf8')).config;
}

/** The run's batches; sources named by the config are prepared on first use into `<runs_dir>/.cache/data`. */
export function trainingData(config: RunConfig): Promise<RunData> {
  const { data, train, model } = config;
  return trainingBatches(data, {
    batchSize: train.batch_size, seqLen: train.seq_len, seed: train.seed, evalBatches: train.eval_batches, vocabSize: model.vocab_size,
  }, resolve(config.output.runs_dir, '.cache', 'data'));
}

export type RunData = TrainingData & { tokens: number; dataset: string };

export interface RunOptions {
  config: RunConfig;
  store: RunStore;
  /** The run's data when the caller has opened it already (to refuse bad data before writing anything). */
  data?: RunData;
  backend: string;
  versions: Record<string, string>;
  /** Start over: drop the run's metrics and checkpoints first. */
  restart?: boolean;
  sweep?: string;
  hooks?: TrainHooks;
  logLevel?: string;
  /** Data parallel: this rank (src/distributed). Only rank 0 writes; the caller gives the other ranks a store that writes nothing. */
  replica?: Replica;
}

export interface RunResult {
  identity: RunIdentity;
  outcome: TrainOutcome;
  parameters: number;
}

function openLog(dir: string, level: string): Logger {
  return pino({ level }, pino.destination({ dest: join(dir, 'train.log'), sync: true, append: true }));
}

/** Under data parallel, this rank's rows of each global batch; every rank keeps the same position. */
function rankShare(data: RunData, config: RunConfig, replica: Replica | undefined): RunData {
  if (!replica) return data;
  const rows = config.train.batch_size;
  return {
    ...data,
    position: () => data.position(),
    seek: (p) => data.seek(p),
    nextBatch: () => rankRows(data.nextBatch(), replica, rows),
    ...(data.lastBatchWeights && { lastBatchWeights: () => rankRows(data.lastBatchWeights!(), replica, rows) }),
  };
}

/** Training's analyses take the first validation batch: the first batch_size validation windows. */
function trainingSampleSet(config: RunConfig, data: RunData, backend: string, precision: string): SampleSet {
  const { seq_len } = config.train;
  const samples = data.validation[0]!.length / (seq_len + 1);
  const key = sampleSetKey({ dataset: data.dataset, batching: config.data.batching, samples, seqLen: seq_len });
  return { key, backend, precision };
}

export async function executeRun(opts: RunOptions): Promise<RunResult> {
  const { config, store } = opts;
  checkFitsBackend(config, opts.backend, { ranks: opts.replica?.worldSize });
  const precision = applyPrecision(config, opts.backend);
  // The tokenizer by name and file content, so a report can tell apart runs whose perplexities are per different tokens.
  const versions = {
    ...opts.versions, precision, tokenizer: describeFile(tokenizerInfo(config.data.tokenizer, config.data.eos_token)),
    ...(opts.replica && { ranks: `${opts.replica.worldSize} (data parallel)` }),
  };
  const { replica } = opts;
  // Rank 0 prepares the data (into a cache every rank shares) before the others read it.
  const data = rankShare(opts.data ?? await (replica ? replica.firstOnRankZero(() => trainingData(config)) : trainingData(config)), config, replica);
  const identity = runIdentity(config);
  if (!opts.restart) onlyRankZero(replica, () => checkStoreCoversCheckpoints(config, store, identity), () => undefined);
  onlyRankZero(replica, () => {
    if (opts.restart) rmSync(join(identity.dir, 'checkpoints'), { recursive: true, force: true });
    mkdirSync(identity.dir, { recursive: true });
    writeFileDurably(join(identity.dir, 'run.json'), JSON.stringify({ id: identity.id, hash: identity.hash, config }, null, 2));
  }, () => undefined);
  const log = onlyRankZero(replica, () => openLog(identity.dir, opts.logLevel ?? 'info'), silentLog);
  const existing = store.getRun(identity.id);
  if (!existing) {
    store.createRun({
      id: identity.id, name: config.name, sweep: opts.sweep ?? null, config, configHash: identity.hash,
      seed: config.train.seed, backend: opts.backend, totalSteps: config.train.steps,
      versions, runDir: identity.dir,
    });
  } else if (existing.status !== 'running') {
    store.setStatus(identity.id, 'running');
  }
  const parameters = parameterCount(config.model);
  log.info({ run: identity.id, backend: opts.backend, versions, parameters, trainTokens: data.tokens }, 'start');
  // TensorBoard events follow the store: each committed metric batch is written to the run's folder too.
  const events = config.output.tensorboard ? onlyRankZero(replica, () => LiveEvents.open(identity.dir, config), () => undefined) : undefined;
  const metrics = new MetricBuffer(store, identity.id, undefined, events);
  let analyses: AnalysisStore | undefined;
  const analysisStore = () => (analyses ??= AnalysisStore.open(store.file));
  let outcome: TrainOutcome;
  try {
    outcome = await train({
      config, configHash: identity.hash, runDir: identity.dir, data, metrics, log,
      resume: !opts.restart,
      deleteMetricsAfter: (step) => {
        store.deleteMetricsAfter(identity.id, step);
        events?.resumeAfter(step);
      },
      recordAnalysis: onlyRankZero(replica, () => (step: number, forward: ForwardAnalysis) => {
        const set = trainingSampleSet(config, data, opts.backend, precision);
        for (const [name, rows] of Object.entries(cheapAnalysisRows(forward))) analysisStore().write(identity.id, step, name, set, rows);
      }, () => undefined),
      replica,
      hooks: {
        ...opts.hooks,
        // Every rank stops after the same step when any of them is asked to.
        ...(replica && { stopRequested: () => replica.anyRank(opts.hooks?.stopRequested?.() ?? false) }),
        onStep: (report) => {
          if (report.step % 10 === 0) store.heartbeat(identity.id, report.step);
          opts.hooks?.onStep?.(report);
        },
      },
    });
  } catch (e) {
    log.error({ err: e }, 'failed');
    try {
      metrics.flush();
      store.setStatus(identity.id, 'failed', { error: (e as Error).message });
      events?.end('failed');
    } catch (recording) {
      // The store itself failed (a full disk, say): the run stays `running` there, and
      // reads as interrupted once this process is gone (sweep/state.ts isInterrupted).
      log.error({ err: recording }, 'could not record the failure');
    }
    throw storeProblem(e, store.file);
  } finally {
    analyses?.close();
  }
  store.heartbeat(identity.id, outcome.step);
  if (outcome.status === 'diverged') store.setStatus(identity.id, 'diverged', { divergedStep: outcome.step, error: outcome.reason });
  else store.setStatus(identity.id, outcome.status);
  events?.end(outcome.status);
  // Rows arrive step by step across series, leaving pages part-filled: repack once at the end.
  if (outcome.status !== 'killed') store.compact();
  log.info({ outcome, numTensors: tf.memory().numTensors }, 'end');
  return { identity, outcome, parameters };
}

/** A SQLite error (disk full, I/O) as one paragraph naming the database, exit 1; other errors unchanged. */
function storeProblem(e: unknown, file: string): unknown {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return e;
  return Object.assign(new Error(`could not write ${file}: ${(e as Error).message} (${code}); the run's checkpoints are intact: free space and rerun to resume`), { exitCode: 1 });
}

/** Raised when a run's checkpoints are ahead of its metrics in the store: resuming would hide the gap. */
export class IncompleteRunError extends Error {
  readonly exitCode = 2;
}

/**
 * The store must hold every train/loss row up to the run's newest checkpoint (rows are
 * flushed before each checkpoint is written), else the database was deleted, replaced
 * or repaired: resuming would record the run as complete with rows missing.
 */
function checkStoreCoversCheckpoints(config: RunConfig, store: RunStore, identity: RunIdentity): void {
  const newest = stepDirs(join(identity.dir, 'checkpoints'))[0];
  if (!newest) return;
  const { log_every } = config.train;
  const expected = Math.floor(newest.step / log_every) + (newest.step === config.train.steps && newest.step % log_every !== 0 ? 1 : 0);
  const record = store.getRun(identity.id);
  const recorded = record ? store.scalarSeries(identity.id, 'train/loss').filter((p) => p.step <= newest.step).length : 0;
  if (recorded >= expected) return;
  const holds = record ? `train/loss for only ${recorded} of its ${expected} logged steps` : 'no record of it';
  throw new IncompleteRunError(`run ${identity.id}: its checkpoints reach step ${newest.step} (${newest.dir}) but ${store.file} holds ${holds} (a deleted, replaced or repaired database?); resuming would record it as complete with metrics missing, so nothing was done. \`normlab train <config> --restart\` trains it again from step 0; or put the run's database back`);
}
