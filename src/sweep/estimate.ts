// What a planned run costs, for the dry-run listing: its data, the tokens it
// trains on and GPU-hours at a stated sustained rate (6·N FLOPs per token for
// the weights plus the attention scores, the usual estimate).
import type { RunConfig } from '../config/schema.ts';
import { parameterCount } from '../model/model.ts';

/** Sustained FLOP/s the estimate assumes: an H100 at about 40 % of its dense bf16 peak (989 TFLOP/s). */
export const ESTIMATE_FLOPS = 400e12;
export const ESTIMATE_RATE = 'GPU-hours at 400 TFLOP/s sustained (an H100 at ~40 % of its bf16 peak)';

export interface RunEstimate {
  /** Token positions trained on: steps × batch_size × seq_len. */
  tokens: number;
  gpuHours: number;
}

export function estimateRun(config: RunConfig): RunEstimate {
  const { steps, batch_size: batch, seq_len: seq } = config.train;
  const tokens = steps * batch * seq;
  const { n_layers: layers, d_model: width } = config.model;
  const perToken = 6 * parameterCount(config.model) + 6 * layers * seq * width;
  return { tokens, gpuHours: (tokens * perToken) / ESTIMATE_FLOPS / 3600 };
}

/** `data/c4/en/c4-train.*.json.gz`, or the corpus name. */
export function dataLabel(config: RunConfig): string {
  const source = config.data.source === undefined ? `corpus ${config.data.corpus}` : [config.data.source].flat().join(' ');
  return `${source} (${config.data.tokenizer.split('/').slice(-2).join('/')})`;
}

/** 1.3B, 52M, 900K. */
export function shortCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(n >= 1e10 ? 0 : 1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  return n >= 1e3 ? `${Math.round(n / 1e3)}K` : String(n);
}
