import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { ConfigError, loadRunConfig } from '../src/config/load.ts';
import { configHash } from '../src/config/hash.ts';
import { pooledVariances, realTokens, splitBatch } from '../src/train/accumulate.ts';
import { loadCheckpoint, stepDirs } from '../src/train/checkpoint.ts';
import { runCli, tempDir } from './helpers/cli.ts';

test('a batch splits into equal micro-batches that count their own real tokens', () => {
  const T = 3;
  const tokens = Int32Array.from({ length: 4 * (T + 1) }, (_, i) => i);
  const weights = Float32Array.from([1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]);
  const parts = splitBatch({ tokens, weights, rows: 4, seqLen: T }, 2);
  assert.deepEqual(parts.map((p) => [p.rows, p.tokens[0], p.tokens.length]), [[2, 0, 8], [2, 8, 8]]);
  assert.deepEqual(parts.map(realTokens), [4, 5], 'weighted by real tokens, not by micro-batch');
  assert.equal(realTokens({ tokens, rows: 4, seqLen: T }), 12);
});

test('micro-batch variances pool into the whole batch\'s population variance', () => {
  const values = [[1, 2, 3, 10], [4, 4, 5, 9]];
  const variance = (xs: number[]) => { const m = xs.reduce((a, b) => a + b) / xs.length; return xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length; };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b) / xs.length;
  const halves = values.map((xs) => [xs.slice(0, 2), xs.slice(2)]);
  const means = [0, 1].map((h) => Float32Array.from(halves.map((layer) => mean(layer[h]!))));
  const variances = [0, 1].map((h) => Float32Array.from(halves.map((layer) => variance(layer[h]!))));
  const pooled = pooledVariances(means, variances);
  values.forEach((xs, l) => assert.ok(Math.abs(pooled[l]! - variance(xs)) < 1e-9, `layer ${l}: ${pooled[l]} vs ${variance(xs)}`));
});

/** Short documents of varied lengths, so truncate batching pads each row differently. */
function shortDocuments(dir: string): string {
  const docs = join(dir, 'docs');
  mkdirSync(docs);
  const words = 'the quick brown fox jumps over a lazy dog while seven wizards quietly hex every jovial king'.split(' ');
  for (let i = 0; i < 64; i++) {
    const length = 2 + ((i * 7) % 11);
    writeFileSync(join(docs, `d${String(i).padStart(2, '0')}.txt`), Array.from({ length }, (_, j) => words[(i + j * 3) % words.length]).join(' '));
  }
  return docs;
}

/** A checkpoint's weights as arrays. */
function weights(dir: string): Map<string, Float32Array> {
  const { params } = loadCheckpoint(dir);
  const arrays = new Map(Object.entries(params).map(([key, t]) => [key, t.dataSync() as Float32Array]));
  tf.dispose(Object.values(params));
  return arrays;
}

function trainRun(dir: string, docs: string, microBatch?: number) {
  const config = {
    name: `acc${microBatch ?? ''}`,
    model: { preset: 'nano', n_layers: 2 },
    train: {
      steps: 4, batch_size: 4, seq_len: 48, lr: 3e-3, warmup_steps: 1, eval_every: 4, eval_batches: 1,
      diag_every: 2, checkpoint_every: 4, ...(microBatch && { micro_batch_size: microBatch }),
    },
    data: { source: docs, tokenizer: 'byte', batching: 'truncate', val_fraction: 0.3 },
    output: { runs_dir: join(dir, 'runs') },
  };
  const file = join(dir, `${config.name}.yaml`);
  writeFileSync(file, stringify(config));
  const r = runCli(['train', file, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const runDir = join(dir, 'runs', readdirSync(join(dir, 'runs')).find((n) => n.startsWith(`${config.name}-`))!);
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  try {
    const runId = (db.prepare('SELECT id FROM runs WHERE name = ?').get(config.name) as { id: string }).id;
    const series = (name: string) => (db.prepare('SELECT value FROM scalars WHERE run_id = ? AND name = ? ORDER BY step').all(runId, name) as { value: number }[]).map((r) => r.value);
    const layers = (db.prepare("SELECT value FROM layer_metrics WHERE run_id = ? AND name = 'output_var' ORDER BY step, layer").all(runId) as { value: number }[]).map((r) => r.value);
    return { losses: series('train/loss'), gradNorms: series('train/grad_norm'), outputVar: layers, params: weights(stepDirs(join(runDir, 'checkpoints'))[0]!.dir) };
  } finally {
    db.close();
  }
}

function assertClose(actual: number[], expected: number[], tolerance: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) <= tolerance * Math.max(1, Math.abs(expected[i]!)), `${what}[${i}]: ${a} vs ${expected[i]}`));
}

test('accumulated micro-batches train as one big batch, padding weighted by real tokens (truncate batching)', () => {
  const dir = tempDir();
  const docs = shortDocuments(dir);
  const whole = trainRun(dir, docs);
  for (const microBatch of [2, 1]) {
    const split = trainRun(dir, docs, microBatch);
    assertClose(split.losses, whole.losses, 1e-5, `losses, micro-batch ${microBatch}`);
    assertClose(split.gradNorms, whole.gradNorms, 1e-4, `gradient norms, micro-batch ${microBatch}`);
    assertClose(split.outputVar, whole.outputVar, 1e-4, `output variances, micro-batch ${microBatch}`);
    for (const [key, data] of whole.params) {
      const other = split.params.get(key)!;
      let worst = 0;
      data.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - other[i]!)); });
      assert.ok(worst < 2e-5, `${key} after 4 steps with micro-batch ${microBatch}: max |Δ| ${worst}`);
    }
  }
});

test('train.micro_batch_size must divide the batch; absent, a config keeps its run id', () => {
  const dir = tempDir();
  const file = join(dir, 'c.yaml');
  writeFileSync(file, stringify({ model: { preset: 'nano' }, train: { batch_size: 4 } }));
  assert.throws(() => loadRunConfig(file, ['train.micro_batch_size=3']), (e: unknown) =>
    e instanceof ConfigError && /train\.micro_batch_size: must divide train\.batch_size/.test(e.message));
  // The hash of a config written before the key existed: absent keys are not hashed.
  const before = loadRunConfig(file);
  assert.ok(!('micro_batch_size' in before.train) && !('precision' in before.train));
  assert.notEqual(configHash(loadRunConfig(file, ['train.micro_batch_size=2'])), configHash(before));
});
