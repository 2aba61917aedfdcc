// A run's identity: two configs that train the same model identically share a hash.
import { createHash } from 'node:crypto';
import { tokenizerHashIdentity } from '../data/hf.ts';
import { isBuiltinTokenizer } from '../data/tokenizers.ts';
import { usesEmbedNorm } from '../model/config.ts';
import type { RunConfig } from './schema.ts';

/** JSON with object keys sorted at every depth, so equal objects give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * sha256 (first 16 hex digits) of what determines training: everything but the
 * label, the output paths, the preset name (its fields are in `model`) and the
 * logging / diagnostics / checkpoint cadence and storage, which never change the weights.
 * A tokenizer file counts by its content (sha256), not by where it lies.
 */
export function configHash(cfg: RunConfig): string {
  const { name: _name, output: _output, model_preset: _preset, ...identity } = cfg;
  const { log_every: _l, diag_every: _d, analyze_every: _a, checkpoint_every: _c, keep_checkpoints: _k,
    checkpoint_shard_size: _s, on_checkpoint_no_space: _n, ...train } = cfg.train;
  // null embed_norm means "the strategy's default"; hash the value it stands for.
  const model = { ...cfg.model, embed_norm: usesEmbedNorm(cfg.model) };
  const { tokenizer } = cfg.data;
  const data = isBuiltinTokenizer(tokenizer) ? cfg.data : { ...cfg.data, tokenizer: tokenizerHashIdentity(tokenizer) };
  return createHash('sha256').update(canonicalJson({ ...identity, model, train, data })).digest('hex').slice(0, 16);
}
