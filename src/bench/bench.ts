// `normlab bench`: the time of one training step (forward, backward, global
// norm clip, AdamW) on synthetic tokens, the throughput and model-FLOPs
// utilisation it implies, what per-layer diagnostics add, and memory.
import * as tf from '@tensorflow/tfjs';
import type { RunConfig } from '../config/schema.ts';
import { Rng } from '../data/rng.ts';
import { gradNorms, gradSquareSums, scaleNorms } from '../metrics/diagnostics.ts';
import type { ModelConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Model, parameterCount } from '../model/model.ts';
import { AdamW, clipFactor } from '../train/adamw.ts';
import { accumulateGradients, type HostBatch, splitBatch } from '../train/accumulate.ts';

export interface BenchOptions {
  /** Timed steps, after `warmup` untimed ones (at least one). */
  steps: number;
  warmup: number;
  /** Timed steps that also compute the per-layer diagnostics. */
  diagnosticSteps: number;
}

export interface BenchResult {
  parameters: number;
  tokensPerStep: number;
  /** Median over the timed steps. */
  msPerStep: number;
  tokensPerSecond: number;
  /** 6·N + 12·L·d·T: see modelFlopsPerToken. */
  flopsPerToken: number;
  gflopsPerSecond: number;
  /** Absent when no diagnostic step was timed. */
  diagnostics?: {
    /** Median time of a step that also computes the per-layer diagnostics. */
    msPerStep: number;
    /** What they add to the average step at the config's diag_every. */
    overhead: number;
  };
  memory: {
    peakRssBytes: number;
    /** tfjs's count of live tensor bytes after the steps: parameters and AdamW moments. */
    tensorBytes: number;
    tensorsBefore: number;
    tensorsAfter: number;
    /** What the backend's memory() adds to tf.memory() (the torch backend: native bytes, peak, cache). */
    backend: Record<string, unknown>;
  };
}

/**
 * Model FLOPs per trained token, PaLM's formula (Chowdhery et al. 2022, app. B):
 * 6·N for the matrix products of forward and backward, N the parameters
 * without the embedding table (a lookup), plus 12·L·d·T for attention scores
 * and their product with V over a context of T (the causal half counted too).
 */
export function modelFlopsPerToken(cfg: ModelConfig, seqLen: number): number {
  const n = parameterCount(cfg) - cfg.vocab_size * cfg.d_model;
  return 6 * n + 12 * cfg.n_layers * cfg.d_model * seqLen;
}

/** One trainer step: what src/train/trainer.ts does (micro-batches summed, G / N), without the store. */
function trainStep(model: Model, params: Record<string, tf.Tensor>, optimizer: AdamW, batch: HostBatch, config: RunConfig, diagnostics: boolean): void {
  const parts = config.train.batch_size / (config.train.micro_batch_size ?? config.train.batch_size);
  const { grads, lossSum, tokens } = accumulateGradients(model, params, splitBatch(batch, parts), diagnostics);
  lossSum.dataSync();
  const norms = scaleNorms(gradNorms(gradSquareSums(grads), config.model.n_layers), 1 / tokens);
  optimizer.apply(params, grads, config.train.lr, clipFactor(norms.total, config.train.grad_clip) / tokens);
  tf.dispose([lossSum, ...Object.values(grads)]);
}

function tensorMemory(): { tensorBytes: number; tensorsAfter: number; backend: Record<string, unknown> } {
  const { numBytes, numTensors, numDataBuffers: _buffers, unreliable: _unreliable, reasons: _reasons, ...backend } = tf.memory() as tf.MemoryInfo;
  return { tensorBytes: numBytes, tensorsAfter: numTensors, backend };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function benchmark(config: RunConfig, options: BenchOptions): BenchResult {
  const { model: cfg, train } = config;
  const model = new Model(cfg);
  const params = initParams(cfg, train.seed);
  const optimizer = new AdamW(train, params);
  const rng = new Rng(train.seed);
  const batch = (): HostBatch => ({
    tokens: Int32Array.from({ length: train.batch_size * (train.seq_len + 1) }, () => rng.nextUint32() % cfg.vocab_size),
    rows: train.batch_size, seqLen: train.seq_len,
  });
  const timeStep = (diagnostics: boolean) => {
    const tokens = batch();
    const started = performance.now();
    trainStep(model, params, optimizer, tokens, config, diagnostics);
    return performance.now() - started;
  };
  try {
    // The first step also makes the model's constant tensors.
    for (let i = 0; i < Math.max(1, options.warmup); i++) timeStep(false);
    const tensorsBefore = tf.memory().numTensors;
    // Diagnostic steps interleave with plain ones, so both see the same machine.
    const plain: number[] = [], withDiagnostics: number[] = [];
    for (let i = 0; i < Math.max(options.steps, options.diagnosticSteps); i++) {
      if (i < options.steps) plain.push(timeStep(false));
      if (i < options.diagnosticSteps) withDiagnostics.push(timeStep(true));
    }
    const msPerStep = median(plain);
    const diagnosticMs = withDiagnostics.length > 0 ? median(withDiagnostics) : undefined;
    const tokensPerStep = train.batch_size * train.seq_len;
    const tokensPerSecond = tokensPerStep / (msPerStep / 1000);
    const flopsPerToken = modelFlopsPerToken(cfg, train.seq_len);
    return {
      parameters: parameterCount(cfg),
      tokensPerStep,
      msPerStep,
      tokensPerSecond,
      flopsPerToken,
      gflopsPerSecond: (flopsPerToken * tokensPerSecond) / 1e9,
      ...(diagnosticMs !== undefined && {
        diagnostics: {
          msPerStep: diagnosticMs,
          overhead: train.diag_every > 0 ? (diagnosticMs - msPerStep) / (train.diag_every * msPerStep) : 0,
        },
      }),
      memory: { peakRssBytes: process.resourceUsage().maxRSS * 1024, ...tensorMemory(), tensorsBefore },
    };
  } finally {
    optimizer.dispose();
    model.dispose();
    tf.dispose(Object.values(params));
  }
}

/** Float32 GEMM rate of the active backend on n×n matrices, best of `repeats`, in GFLOP/s. */
export function matMulRate(n: number, repeats = 3): number {
  const [a, b] = [tf.randomNormal([n, n]), tf.randomNormal([n, n])];
  let best = Infinity;
  for (let i = 0; i <= repeats; i++) {
    const started = performance.now();
    tf.tidy(() => tf.matMul(a!, b!).sum().dataSync());
    if (i > 0) best = Math.min(best, performance.now() - started); // the first run warms up
  }
  tf.dispose([a!, b!]);
  return (2 * n ** 3) / (best / 1000) / 1e9;
}
