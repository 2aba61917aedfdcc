// One run from a resolved config: its folder, its registry row, its data, the
// loop, and how it ended. Used by `normlab train` and by sweep workers.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import pino, { type Logger } from 'pino';
import { configHash } from '../config/hash.ts';
import type { RunConfig } from '../config/schema.ts';
import { PackedBatches, validationBatches } from '../data/batches.ts';
import { checkVocab, prepareTokens } from '../data/tokens.ts';
import { parameterCount } from '../model/model.ts';
import { MetricBuffer, type RunStore } from '../store/store.ts';
import { writeFileDurably } from '../model/safetensors.ts';
import { train, type TrainHooks, type TrainingData, type TrainOutcome } from './trainer.ts';

/** The train/val split is fixed, so every seed of a study is scored on the same documents. */
const SPLIT_SEED = 0;

export interface RunIdentity {
  id: string;
  dir: string;
  hash: string;
}

export function runIdentity(config: RunConfig): RunIdentity {
  const hash = configHash(config);
  const id = `${config.name}-${hash.slice(0, 10)}`;
  return { id, hash, dir: resolve(config.output.runs_dir, id) };
}

/** The resolved config saved with a run, so `--resume <run>` needs nothing else. */
export function readRunConfig(runDir: string): RunConfig {
  const file = join(runDir, 'run.json');
  if (!existsSync(file)) throw Object.assign(new Error(`${runDir}: not a normlab run folder (no run.json)`), { exitCode: 2 });
  return JSON.parse(readFileSync(file, 'utf8')).config;
}

export function trainingData(config: RunConfig): TrainingData & { tokens: number } {
  const { data, train, model } = config;
  const prepared = prepareTokens({
    corpus: data.corpus, tokenizer: data.tokenizer, valFraction: data.val_fraction,
    seed: SPLIT_SEED, cacheDir: resolve(config.output.runs_dir, '.cache', 'tokens'),
  });
  checkVocab(prepared.meta, model.vocab_size);
  const batches = new PackedBatches(prepared.train, train.batch_size, train.seq_len, train.seed);
  return {
    nextBatch: () => batches.next(),
    position: () => batches.position(),
    seek: (p) => batches.seek(p as ReturnType<PackedBatches['position']>),
    validation: validationBatches(prepared.val, train.batch_size, train.seq_len, train.eval_batches),
    tokens: prepared.train.length,
  };
}

export interface RunOptions {
  config: RunConfig;
  store: RunStore;
  backend: string;
  versions: Record<string, string>;
  /** Start over: drop the run's metrics and checkpoints first. */
  restart?: boolean;
  sweep?: string;
  hooks?: TrainHooks;
  logLevel?: string;
}

export interface RunResult {
  identity: RunIdentity;
  outcome: TrainOutcome;
  parameters: number;
}

function openLog(dir: string, level: string): Logger {
  return pino({ level }, pino.destination({ dest: join(dir, 'train.log'), sync: true, append: true }));
}

export async function executeRun(opts: RunOptions): Promise<RunResult> {
  const { config, store } = opts;
  const identity = runIdentity(config);
  if (opts.restart) rmSync(join(identity.dir, 'checkpoints'), { recursive: true, force: true });
  mkdirSync(identity.dir, { recursive: true });
  writeFileDurably(join(identity.dir, 'run.json'), JSON.stringify({ id: identity.id, hash: identity.hash, config }, null, 2));
  const log = openLog(identity.dir, opts.logLevel ?? 'info');
  const data = trainingData(config);
  const existing = store.getRun(identity.id);
  if (!existing) {
    store.createRun({
      id: identity.id, name: config.name, sweep: opts.sweep ?? null, config, configHash: identity.hash,
      seed: config.train.seed, backend: opts.backend, totalSteps: config.train.steps,
      versions: opts.versions, runDir: identity.dir,
    });
  } else if (existing.status !== 'running') {
    store.setStatus(identity.id, 'running');
  }
  const parameters = parameterCount(config.model);
  log.info({ run: identity.id, backend: opts.backend, versions: opts.versions, parameters, trainTokens: data.tokens }, 'start');
  const metrics = new MetricBuffer(store, identity.id);
  let outcome: TrainOutcome;
  try {
    outcome = await train({
      config, configHash: identity.hash, runDir: identity.dir, data, metrics, log,
      resume: !opts.restart,
      deleteMetricsAfter: (step) => store.deleteMetricsAfter(identity.id, step),
      hooks: {
        ...opts.hooks,
        onStep: (report) => {
          if (report.step % 10 === 0) store.heartbeat(identity.id, report.step);
          opts.hooks?.onStep?.(report);
        },
      },
    });
  } catch (e) {
    metrics.flush();
    store.setStatus(identity.id, 'failed', { error: (e as Error).message });
    log.error({ err: e }, 'failed');
    throw e;
  }
  store.heartbeat(identity.id, outcome.step);
  if (outcome.status === 'diverged') store.setStatus(identity.id, 'diverged', { divergedStep: outcome.step, error: outcome.reason });
  else store.setStatus(identity.id, outcome.status);
  log.info({ outcome, numTensors: tf.memory().numTensors }, 'end');
  return { identity, outcome, parameters };
}
