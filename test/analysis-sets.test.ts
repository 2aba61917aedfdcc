// Analyses keyed by sample set (#21): padding changes nothing, a report picks
// one set per run by a stated rule, and a store from before the key still reports.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import Database from 'better-sqlite3';
import { analyses } from '../src/analyze/analyses.ts';
import { useBackend } from '../src/backend/index.ts';
import { type Batch, batchOf, forwardAnalysis, layerDrop } from '../src/metrics/analysis.ts';
import { initParams } from '../src/model/init.ts';
import { MODEL_DEFAULTS, type ModelConfig } from '../src/model/config.ts';
import { Model } from '../src/model/model.ts';
import { chooseSampleSet } from '../src/report/analyses.ts';
import { runCli, tempDir, writeConfig } from './helpers/cli.ts';

const cfg: ModelConfig = { ...MODEL_DEFAULTS, vocab_size: 64, d_model: 32, n_layers: 3, n_heads: 4, ffn_dim: 48, norm: 'pre' };

/** Every analysis of one batch, as plain numbers. */
function analysed(model: Model, params: ReturnType<typeof initParams>, batch: Batch, tokens: tf.Tensor2D) {
  const forward = forwardAnalysis(model, params, batch);
  const grad = analyses.gradnorm({ model, params, batch, tokens, forward }).gradnorm!.map((r) => r.value);
  return { ...forward, drop: layerDrop(model, params, batch, forward.loss), grad };
}

function assertClose(got: unknown, want: unknown, path = ''): void {
  if (want === undefined) {
    assert.equal(got, undefined, path);
  } else if (typeof want === 'number') {
    assert.ok(Math.abs((got as number) - want) <= 1e-5 * Math.abs(want) + 1e-6, `${path}: ${got} vs ${want}`);
  } else if (Array.isArray(want)) {
    assert.equal((got as unknown[]).length, want.length, path);
    want.forEach((w, i) => assertClose((got as unknown[])[i], w, `${path}[${i}]`));
  } else {
    for (const [k, w] of Object.entries(want as object)) assertClose((got as Record<string, unknown>)[k], w, `${path}.${k}`);
  }
}

test('under truncate batching the analyses of padded rows equal those of the same rows without their pads', async () => {
  await useBackend('wasm');
  const model = new Model(cfg);
  const params = initParams(cfg, 5);
  const real = [5, 17, 3, 40, 22, 9, 61, 2, 33]; // 9 tokens: 8 real targets
  const T = 16;
  const padded = [...real, ...Array(T + 1 - real.length).fill(0)];
  const weights = Float32Array.from({ length: T }, (_, t) => (t < real.length - 1 ? 1 : 0));
  const tensors: tf.Tensor[] = [];
  const run = (rows: number[][], w?: Float32Array) => {
    const batch = { ...batchOf(rows), ...(w && { weights: w }) };
    const tokens = tf.tensor2d(rows, [rows.length, rows[0]!.length], 'int32');
    tensors.push(batch.inputs, tokens);
    return analysed(model, params, batch, tokens);
  };
  const before = tf.memory().numTensors;
  const plain = run([real]);
  assertClose(run([padded], weights), plain);
  // Two rows, one padded: pooled over real tokens, each row's last real token.
  const both = run([padded, padded], Float32Array.from([...weights, ...weights]));
  assertClose(both, plain);
  // Without the mask the pads count, and the values move: the test can fail.
  const unmasked = run([padded]);
  assert.ok(Math.abs(unmasked.hiddenVar[2]! - plain.hiddenVar[2]!) > 1e-4 || Math.abs(unmasked.angular[0]![0]! - plain.angular[0]![0]!) > 1e-4);
  tf.dispose([...tensors, ...Object.values(params)]);
  model.dispose(); // its per-length RoPE and mask tables
  assert.equal(tf.memory().numTensors, before - Object.keys(params).length);
});

test('a report draws one sample set per run: the largest at every analysed step, else the one at the most steps', () => {
  const a = 'validation first 2 (packed) seq 32 data 0123456789abcdef';
  const b = 'validation first 64 (packed) seq 32 data 0123456789abcdef';
  const c = 'validation first 16 (packed) seq 32 data 0123456789abcdef';
  assert.equal(chooseSampleSet(new Map([[a, [5, 10]], [b, [10]]])), a, 'b is not at step 5');
  assert.equal(chooseSampleSet(new Map([[a, [5, 10]], [b, [5, 10]]])), b, 'both everywhere: the most samples');
  assert.equal(chooseSampleSet(new Map([[a, [5]], [b, [10]], [c, [15, 20]]])), c, 'none everywhere: the most steps');
  assert.equal(chooseSampleSet(new Map([[a, [5]], ['', [5]]])), a, 'a known set before the unknown one');
  assert.equal(chooseSampleSet(new Map([[a, [5]]]), b), undefined, 'a named set the run lacks: none');
  assert.equal(chooseSampleSet(new Map()), undefined);
});

/** The analyses table as normlab wrote it before sample sets (schema version 2). */
function makeOld(file: string): void {
  const db = new Database(file);
  db.exec(`ALTER TABLE analyses RENAME TO keyed;
    CREATE TABLE analyses (run_id TEXT NOT NULL, step INTEGER NOT NULL, analysis TEXT NOT NULL,
      layer INTEGER NOT NULL, n INTEGER NOT NULL, param TEXT NOT NULL, value REAL,
      PRIMARY KEY (run_id, analysis, step, layer, n, param));
    INSERT INTO analyses SELECT run_id, step, analysis, layer, n, param, value FROM keyed;
    DROP TABLE keyed;`);
  db.pragma('user_version = 2');
  db.close();
}

test('a store from before sample sets reports its analyses as "sample set unknown"; analyze keeps them apart from new ones', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { train: { steps: 5, checkpoint_every: 5, analyze_every: 5 } });
  assert.equal(runCli(['train', config, '--quiet']).code, 0);
  const file = join(dir, 'runs', 'normlab.sqlite');
  makeOld(file);
  const report = runCli(['report', '--runs-dir', join(dir, 'runs'), '--format', 'json'], dir);
  assert.equal(report.code, 0, report.stderr);
  const tables = (JSON.parse(report.stdout) as { tables: { id: string; note?: string; rows: Record<string, unknown>[] }[] }).tables;
  assert.equal(tables.find((t) => t.id === 'analysis-runs')!.rows[0]!['sample set'], 'sample set unknown');
  assert.match(tables.find((t) => t.id === 'hidden-variance')!.note!, /; sample set unknown\./);
  const html = runCli(['report', '--runs-dir', join(dir, 'runs'), '--format', 'html'], dir);
  assert.match(html.stdout, /"sampleSet":"sample set unknown"/, 'the HTML page names the set too');

  const run = readdirSync(join(dir, 'runs')).find((n) => n.startsWith('tiny-'))!;
  const r = runCli(['analyze', join(dir, 'runs', run), '--samples', '2', '--what', 'variance'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /computed variance\n/);
  assert.match(r.stdout, /also stored at this step, kept apart: "sample set unknown"/);
  const db = new Database(file, { readonly: true });
  const sets = db.prepare("SELECT sample_set, count(*) AS n FROM analyses WHERE analysis = 'variance' GROUP BY sample_set ORDER BY sample_set").all();
  db.close();
  assert.deepEqual(sets.map((s) => (s as { n: number }).n), [3, 3], 'the old rows kept, the new set beside them');
});
