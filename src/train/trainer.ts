// The training loop: batches → step → metrics → store, with checkpoints that
// make a resumed run identical to an uninterrupted one.
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Logger } from 'pino';
import type { RunConfig } from '../config/schema.ts';
import { initParams } from '../model/init.ts';
import { Model } from '../model/model.ts';
import type { Params } from '../model/norms.ts';
import { type Batch, batchOf, type ForwardAnalysis, forwardAnalysis } from '../metrics/analysis.ts';
import { type GradNorms, gradNorms, gradSquareSums, scaleNorms } from '../metrics/diagnostics.ts';
import type { ModelConfig } from '../model/config.ts';
import { renormalize } from '../model/ngpt.ts';
import { faultPoint } from './faults.ts';
import { applyTvr } from './tvr.ts';
import type { MetricBuffer } from '../store/store.ts';
import { AdamW, clipFactor } from './adamw.ts';
import { latestGoodCheckpoint, removeUnfinishedCheckpoints, saveCheckpoint, type SaveOptions } from './checkpoint.ts';
import { evaluate } from './evaluate.ts';
import { tokenizerInfo } from '../data/tokenizers.ts';
import { PrefetchedData } from './prefetch.ts';
import { learningRate } from './schedule.ts';
import { accumulateGradients, type HostBatch, singleProcess, splitBatch, sumOverRanks } from './accumulate.ts';
import type { Replica } from '../distributed/replica.ts';

/** Where training batches come from; the position is saved in checkpoints. */
export interface TrainingData {
  nextBatch(): Int32Array; // [B, T+1] row-major
  /** Loss weights [B, T] of the batch nextBatch() returned last: 0 on padding (truncate batching). Absent: every target counts. */
  lastBatchWeights?(): Float32Array;
  position(): unknown;
  seek(position: unknown): void;
  /** Reads the next batch ahead, while the device computes (prefetch.ts); position() stays the consumed batches'. */
  prefetch?(): void;
  validation: Int32Array[];
  /** Loss weights of each validation batch, as lastBatchWeights. */
  validationWeights?: Float32Array[];
}

export interface StepReport {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  validation?: { loss: number; perplexity: number };
}

export interface TrainHooks {
  onStep?(report: StepReport): void;
  onResume?(step: number, from: string): void;
  warn?(message: string): void;
  /** Polled between steps: true asks the loop to checkpoint and stop. */
  stopRequested?(): boolean;
}

export type TrainOutcome =
  | { status: 'finished'; step: number; validation: { loss: number; perplexity: number } }
  | { status: 'diverged'; step: number; reason: string }
  | { status: 'killed'; step: number };

export interface TrainContext {
  config: RunConfig;
  configHash: string;
  runDir: string;
  data: TrainingData;
  metrics: MetricBuffer;
  log: Logger;
  hooks?: TrainHooks;
  /** Continue from the newest good checkpoint (metrics after it are dropped). */
  resume: boolean;
  /** Removes metric rows after a step, so replayed steps are not doubled. */
  deleteMetricsAfter(step: number): void;
  /** Receives the cheap layer analyses every `analyze_every` steps. */
  recordAnalysis?(step: number, analysis: ForwardAnalysis): void;
  /** Data parallel (src/distributed): this rank's part; `data` then yields its rows of each global batch. Absent: one process. */
  replica?: Replica;
}

const GPAS_GATE = '.gpas_block.gate';

/** Loss beyond which a run counts as diverged: the config's, or three times a uniform guess. */
export function divergenceLoss(config: RunConfig): number {
  return config.train.diverge_loss ?? 3 * Math.log(config.model.vocab_size);
}

/** The first validation batch as the analyses take it (inputs, flat targets, and the pad mask under truncate batching). */
function analysisBatch(tokens: tf.Tensor2D, weights: Float32Array | undefined): Batch {
  const [B] = tokens.shape;
  return { ...batchOf(tokens.dataSync() as Int32Array, B), ...(weights && { weights }) };
}

/** nGPT trains without weight decay (MODEL.md §7.3). */
function optimizerConfig(config: RunConfig) {
  return { ...config.train, weight_decay: config.model.norm === 'ngpt' ? 0 : config.train.weight_decay };
}

interface State {
  model: Model;
  params: Params;
  optimizer: AdamW;
  step: number;
}

function restoreOrInit(ctx: TrainContext): State {
  const { config } = ctx;
  const model = new Model(config.model);
  const checkpointsDir = join(ctx.runDir, 'checkpoints');
  removeUnfinishedCheckpoints(checkpointsDir);
  const checkpoint = ctx.resume ? latestGoodCheckpoint(checkpointsDir, (m) => ctx.hooks?.warn?.(m)) : undefined;
  if (!checkpoint) {
    const params = initParams(config.model, config.train.seed);
    ctx.deleteMetricsAfter(0);
    return { model, params, optimizer: new AdamW(optimizerConfig(config), params), step: 0 };
  }
  const { params, moments } = checkpoint;
  if (checkpoint.state.configHash !== ctx.configHash) {
    tf.dispose([...Object.values(params), ...Object.values(moments!.m), ...Object.values(moments!.v)]);
    // Its checksums may agree (a copied or forged checkpoint): the config hash is what ties it to this run.
    throw Object.assign(new Error(`${checkpoint.dir}: checkpoint was written for config ${checkpoint.state.configHash}, not ${ctx.configHash}; resume with the run's own config, or move the checkpoint away`), { exitCode: 2 });
  }
  const optimizer = new AdamW(optimizerConfig(config), params, { ...moments!, step: checkpoint.state.optimizerStep });
  ctx.data.seek(checkpoint.state.dataPosition);
  ctx.deleteMetricsAfter(checkpoint.state.step);
  ctx.hooks?.onResume?.(checkpoint.state.step, checkpoint.dir);
  return { model, params, optimizer, step: checkpoint.state.step };
}

function checkpointOptions(ctx: TrainContext): SaveOptions {
  const { train } = ctx.config;
  return {
    keep: train.keep_checkpoints, shardBytes: train.checkpoint_shard_size, onNoSpace: train.on_checkpoint_no_space,
    tokenizer: tokenizerInfo(ctx.config.data.tokenizer, ctx.config.data.eos_token), warn: ctx.hooks?.warn,
  };
}

async function checkpoint(ctx: TrainContext, s: State): Promise<void> {
  if (ctx.replica && !ctx.replica.writes) return;
  // Rows up to this step reach the store before the checkpoint that covers them.
  faultPoint('metrics-flush');
  ctx.metrics.flush();
  const dir = await saveCheckpoint(
    join(ctx.runDir, 'checkpoints'), ctx.config.model, ctx.config.train.seq_len, s.params,
    { m: s.optimizer.m, v: s.optimizer.v },
    { step: s.step, optimizerStep: s.optimizer.step, dataPosition: ctx.data.position(), configHash: ctx.configHash },
    checkpointOptions(ctx),
  );
  if (dir) ctx.log.info({ step: s.step, dir }, 'checkpoint');
}

/** Step 1 too, so "at initialization" is measured before any update rather than at the first multiple of diag_every. */
function diagnosesStep(step: number, every: number): boolean {
  return every > 0 && (step === 1 || step % every === 0);
}

function isDue(step: number, every: number, last: number): boolean {
  return step === last || (every > 0 && step % every === 0);
}

/**
 * The global clip (MODEL.md §6), then GPAS's gate clip on the gates' already
 * clipped gradients taken together (§7.4).
 */
function gradScales(cfg: ModelConfig, norms: GradNorms, clipNorm: number): number | ((key: string) => number) {
  const global = clipFactor(norms.total, clipNorm);
  if (!cfg.gpas || cfg.gpas_gate_clip <= 0) return global;
  const gates = [...norms.perParam].filter(([key]) => key.endsWith(GPAS_GATE));
  const gateNorm = Math.hypot(...gates.map(([, n]) => n)) * global;
  const gateScale = global * clipFactor(gateNorm, cfg.gpas_gate_clip);
  return (key) => (key.endsWith(GPAS_GATE) ? gateScale : global);
}

/** Re-parametrizations that follow every optimizer step: nGPT's unit weights, TVR. */
function afterOptimizerStep(cfg: ModelConfig, params: Params, step: number): void {
  if (cfg.norm === 'ngpt') renormalize(params);
  applyTvr(cfg, params, step);
}

/** The batch of this step, split into micro-batches of train.micro_batch_size rows. */
function microBatches(ctx: TrainContext): HostBatch[] {
  const { train } = ctx.config;
  // Rows: the batch size, or under data parallel this rank's share of it.
  const tokens = ctx.data.nextBatch();
  const rows = tokens.length / (train.seq_len + 1);
  const micro = Math.min(train.micro_batch_size ?? rows, rows);
  if (rows % micro !== 0) {
    throw Object.assign(new Error(`train.micro_batch_size ${micro} does not divide this rank's ${rows} rows of each batch (batch_size / ranks)`), { exitCode: 2 });
  }
  return splitBatch({ tokens, weights: ctx.data.lastBatchWeights?.(), rows, seqLen: train.seq_len }, rows / micro);
}

/** Scales of the summed gradient G: 1/N (the mean over real tokens) times the clip's. */
function timesScale(scales: number | ((key: string) => number), factor: number): number | ((key: string) => number) {
  return typeof scales === 'number' ? scales * factor : (key) => scales(key) * factor;
}

/** One optimizer step, or why it could not be taken (a non-finite loss or gradient). */
function trainStep(ctx: TrainContext, s: State, diagnostics: boolean): Omit<StepReport, 'tokensPerSecond'> | { diverged: string } {
  const { train } = ctx.config;
  const local = accumulateGradients(s.model, s.params, microBatches(ctx), diagnostics);
  // The kernels are queued; read the next batch before anything waits for them.
  ctx.data.prefetch?.();
  const { grads, lossSum, tokens } = (ctx.replica ? sumOverRanks(ctx.replica) : singleProcess)(local);
  try {
    // The gradient is G / N: its norms are G's over N, and AdamW takes the 1/N with the clip factor.
    const perToken = 1 / tokens;
    const lossValue = lossSum.dataSync()[0]! * perToken;
    const norms = scaleNorms(gradNorms(gradSquareSums(grads), ctx.config.model.n_layers), perToken);
    const step = s.step + 1;
    if (!Number.isFinite(lossValue)) return { diverged: `loss is ${lossValue} at step ${step}` };
    const limit = divergenceLoss(ctx.config);
    if (lossValue > limit) return { diverged: `loss ${lossValue.toFixed(2)} exceeds train.diverge_loss ${limit.toFixed(2)} at step ${step}` };
    if (!Number.isFinite(norms.total)) return { diverged: `gradient norm is ${norms.total} at step ${step}` };
    const lr = learningRate(step, train);
    faultPoint('optimizer-step');
    s.optimizer.apply(s.params, grads, lr, timesScale(gradScales(ctx.config.model, norms, train.grad_clip), perToken));
    afterOptimizerStep(ctx.config.model, s.params, step);
    s.step = step;
    if (step % train.log_every === 0 || step === train.steps) {
      ctx.metrics.scalar(step, 'train/loss', lossValue);
      ctx.metrics.scalar(step, 'train/lr', lr);
      ctx.metrics.scalar(step, 'train/grad_norm', norms.total);
    }
    if (diagnostics) {
      norms.perLayer.forEach((v, i) => ctx.metrics.layer(step, 'grad_norm', i + 1, v));
      for (const [key, v] of norms.perParam) ctx.metrics.param(step, 'grad_norm', key, v);
      local.outputVariances!.forEach((v, i) => ctx.metrics.layer(step, 'output_var', i + 1, v));
    }
    return { step, loss: lossValue, lr, gradNorm: norms.total };
  } finally {
    tf.dispose([lossSum, ...Object.values(grads)]);
  }
}

export async function train(context: TrainContext): Promise<TrainOutcome> {
  const ctx = { ...context, data: new PrefetchedData(context.data) };
  const { train } = ctx.config;
  const s = restoreOrInit(ctx);
  ctx.replica?.checkSameStart(s.step, s.params);
  const validation = ctx.data.validation.map((b) => tf.tensor2d(b, [b.length / (train.seq_len + 1), train.seq_len + 1], 'int32'));
  const validationWeights = ctx.data.validationWeights?.map((w) => tf.tensor2d(w, [w.length / train.seq_len, train.seq_len]));
  const tokensPerStep = train.batch_size * train.seq_len;
  let lastValidation: { loss: number; perplexity: number } | undefined;
  try {
    while (s.step < train.steps) {
      if (ctx.hooks?.stopRequested?.()) {
        await checkpoint(ctx, s);
        return { status: 'killed', step: s.step };
      }
      const started = performance.now();
      const result = trainStep(ctx, s, diagnosesStep(s.step + 1, train.diag_every));
      if ('diverged' in result) {
        ctx.metrics.flush();
        return { status: 'diverged', step: s.step + 1, reason: result.diverged };
      }
      const tokensPerSecond = tokensPerStep / ((performance.now() - started) / 1000);
      if (result.step % train.log_every === 0 || result.step === train.steps) ctx.metrics.scalar(result.step, 'train/tokens_per_s', tokensPerSecond);
      let report: StepReport = { ...result, tokensPerSecond };
      if (isDue(s.step, train.eval_every, train.steps)) {
        const v = evaluate(s.model, s.params, validation, validationWeights);
        ctx.metrics.scalar(s.step, 'val/loss', v.loss);
        ctx.metrics.scalar(s.step, 'val/ppl', v.perplexity);
        report = { ...report, validation: v };
        lastValidation = v;
      }
      if (ctx.recordAnalysis && train.analyze_every > 0 && s.step % train.analyze_every === 0) {
        const batch = analysisBatch(validation[0]!, ctx.data.validationWeights?.[0]);
        try {
          ctx.recordAnalysis(s.step, forwardAnalysis(s.model, s.params, batch));
        } finally {
          batch.inputs.dispose();
        }
      }
      ctx.log.info(report, 'step');
      ctx.hooks?.onStep?.(report);
      if (isDue(s.step, train.checkpoint_every, train.steps)) await checkpoint(ctx, s);
      // Let signal handlers run between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
    ctx.metrics.flush();
    // A run resumed from its final checkpoint has not evaluated in this process.
    return { status: 'finished', step: s.step, validation: lastValidation ?? evaluate(s.model, s.params, validation, validationWeights) };
  } finally {
    tf.dispose([...validation, ...(validationWeights ?? []), ...Object.values(s.params)]);
    s.optimizer.dispose();
    s.model.dispose();
  }
}
