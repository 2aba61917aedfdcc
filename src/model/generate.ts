// Text generation: a KV cache so each new token costs one position's forward
// pass (linear in the length, not quadratic), and seeded sampling with
// temperature, top-k and top-p, deterministic for a given seed.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../data/rng.ts';
import type { Model } from './model.ts';
import type { Params } from './norms.ts';

/** Every block's keys and values [B, H, past, hd] of the tokens seen so far. */
export class KvCache {
  past = 0;
  private keys: (tf.Tensor | undefined)[] = [];
  private values: (tf.Tensor | undefined)[] = [];

  /** capacity: the most tokens the cache will hold (sizes the RoPE table and mask). */
  constructor(readonly capacity: number) {}

  /** Adds block `layer`'s keys and values of the new tokens; returns all of them. Kept past the caller's tidy. */
  append(layer: number, k: tf.Tensor, v: tf.Tensor): [tf.Tensor, tf.Tensor] {
    const grow = (store: (tf.Tensor | undefined)[], t: tf.Tensor) => {
      const old = store[layer];
      const all = tf.keep(old ? tf.concat([old, t], 2) : t);
      old?.dispose();
      store[layer] = all;
      return all;
    };
    return [grow(this.keys, k), grow(this.values, v)];
  }

  dispose(): void {
    tf.dispose([...this.keys, ...this.values].filter((t): t is tf.Tensor => t !== undefined));
    this.keys = [];
    this.values = [];
  }
}

export interface SampleOptions {
  maxTokens: number;
  /** 0: always the most likely token. */
  temperature: number;
  /** Keep only the k most likely tokens; 0 = all. */
  topK: number;
  /** Keep the most likely tokens whose probabilities add up to p; 1 = all. */
  topP: number;
  seed: number;
  /** Generation ends after this token (the end of a document). */
  stop?: number;
}

/** Draws the next token from last-position logits. */
export function sampleToken(logits: Float32Array, opts: Pick<SampleOptions, 'temperature' | 'topK' | 'topP'>, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (opts.temperature === 0) return best;
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const kept = opts.topK > 0 ? order.slice(0, opts.topK) : order;
  const weights = kept.map((i) => Math.exp((logits[i]! - logits[best]!) / opts.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let n = 0;
  for (let mass = 0; n < kept.length && (n === 0 || mass < opts.topP * total); n++) mass += weights[n]!;
  const nucleus = weights.slice(0, n).reduce((a, b) => a + b, 0);
  let u = rng.nextFloat() * nucleus;
  for (let i = 0; i < n; i++) if ((u -= weights[i]!) < 0) return kept[i]!;
  return kept[n - 1]!;
}

/** The logits of the last position after feeding `tokens` through the model and the cache. */
function step(model: Model, params: Params, cache: KvCache, tokens: number[]): Float32Array {
  const logits = tf.tidy(() => {
    const inputs = tf.tensor2d(tokens, [1, tokens.length], 'int32');
    const out = model.forward(params, inputs, { cache }).logits;
    return out.slice([0, tokens.length - 1, 0], [1, 1, out.shape[2]]);
  });
  cache.past += tokens.length;
  try {
    return logits.dataSync() as Float32Array;
  } finally {
    logits.dispose();
  }
}

/** Continues `prompt` (token ids, at least one) by up to maxTokens tokens; returns the new ones. */
export function generate(model: Model, params: Params, prompt: number[], opts: SampleOptions): number[] {
  const cache = new KvCache(prompt.length + opts.maxTokens);
  const rng = new Rng(opts.seed);
  const out: number[] = [];
  try {
    let logits = step(model, params, cache, prompt);
    while (out.length < opts.maxTokens) {
      const next = sampleToken(logits, opts, rng);
      out.push(next);
      if (next === opts.stop || out.length === opts.maxTokens) break;
      logits = step(model, params, cache, [next]);
    }
    return out;
  } finally {
    cache.dispose();
  }
}
