import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import pino from 'pino';
import { useBackend } from '../src/backend/index.ts';
import { resolveRunConfig } from '../src/config/load.ts';
import { STRATEGIES, MODEL_DEFAULTS, type ModelConfig } from '../src/model/config.ts';
import { initParams } from '../src/model/init.ts';
import { parameterShapes } from '../src/model/model.ts';
import { MetricBuffer, RunStore } from '../src/store/store.ts';
import { train } from '../src/train/trainer.ts';
import { trainingData } from '../src/train/run.ts';
import { findCases, UnsupportedCase, loadCase } from '../src/verify/golden.ts';
import { ROOT, runCli, tempDir } from './helpers/cli.ts';

const GOLDEN = join(ROOT, '..', 'shared', 'golden');

test('parameter keys of every strategy match the reference cases\' weights', () => {
  let checked = 0;
  for (const dir of findCases(GOLDEN)) {
    let c;
    try { c = loadCase(dir); } catch (e) { if (e instanceof UnsupportedCase) continue; throw e; }
    const expectedKeys = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).keys as string[];
    assert.deepEqual([...parameterShapes(c.config).keys()].sort(), [...expectedKeys].sort(), c.name);
    for (const [key, shape] of parameterShapes(c.config)) assert.deepEqual(c.weights.get(key)!.shape, shape, key);
    checked++;
  }
  assert.ok(checked >= 13, `checked ${checked} cases`);
  assert.ok(STRATEGIES.every((s) => findCases(GOLDEN).some((d) => d.endsWith(`/${s}`))), 'every strategy has a case');
});

for (const backend of ['wasm', 'cpu']) {
  test(`normlab verify passes every supported reference case on ${backend}`, () => {
    const r = runCli(['verify', GOLDEN, '--backend', backend]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const summary = r.stdout.match(/(\d+) passed, (\d+) failed, (\d+) skipped/);
    assert.ok(summary, r.stdout);
    assert.equal(Number(summary[2]), 0);
    assert.ok(Number(summary[1]) >= 13);
  });
}

test('normlab verify fails on a case whose expected loss is off', () => {
  const dir = tempDir();
  for (const f of ['config.json', 'batch.json', 'weights.safetensors']) {
    const bytes = readFileSync(join(GOLDEN, 'pre', f));
    writeFileSync(join(dir, f), bytes);
  }
  const expected = JSON.parse(readFileSync(join(GOLDEN, 'pre', 'expected.json'), 'utf8'));
  expected.loss *= 1.001;
  writeFileSync(join(dir, 'expected.json'), JSON.stringify(expected));
  const bad = runCli(['verify', dir, '--backend', 'wasm']);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /FAIL\s+pre[\s\S]*✗ loss/);
});

test('deepnorm scales W_v, W_o and the FFN matrices by (8L)^(-1/4) at init', async () => {
  await useBackend('wasm');
  const cfg: ModelConfig = { ...MODEL_DEFAULTS, vocab_size: 512, d_model: 256, n_layers: 8, n_heads: 4, ffn_dim: 512, norm: 'deepnorm' };
  const params = initParams(cfg, 7);
  const std = (key: string) => {
    const v = params[key]!.dataSync();
    let s = 0; for (const x of v) s += x * x;
    return Math.sqrt(s / v.length);
  };
  const beta = Math.pow(64, -0.25);
  for (const name of ['self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']) {
    assert.ok(Math.abs(std(`model.layers.3.${name}.weight`) / (0.02 * beta) - 1) < 0.02, name);
  }
  for (const key of ['model.layers.3.self_attn.q_proj.weight', 'model.embed_tokens.weight', 'lm_head.weight']) {
    assert.ok(Math.abs(std(key) / 0.02 - 1) < 0.02, key);
  }
  assert.deepEqual(Array.from(params['model.layers.0.post_attention_layernorm.weight']!.dataSync()), new Array(256).fill(1));
  tf.dispose(Object.values(params));
});

test('the live tensor count stays flat across training steps', async () => {
  await useBackend('wasm');
  const dir = tempDir();
  const config = resolveRunConfig({
    name: 'flat', model: { preset: 'nano', norm: 'peri', n_layers: 2 },
    train: { steps: 12, batch_size: 2, seq_len: 16, warmup_steps: 2, eval_every: 4, eval_batches: 1, diag_every: 3, checkpoint_every: 6 },
    output: { runs_dir: join(dir, 'runs') },
  }, 'test');
  const store = RunStore.open(join(dir, 'runs', 'db.sqlite'));
  store.createRun({ id: 'flat', name: 'flat', config, configHash: 'h', seed: 0, backend: 'wasm', totalSteps: 12, versions: {}, runDir: dir });
  const counts: number[] = [];
  const before = tf.memory().numTensors;
  const outcome = await train({
    config, configHash: 'h', runDir: join(dir, 'run'), data: await trainingData(config), metrics: new MetricBuffer(store, 'flat'),
    log: pino({ level: 'silent' }), resume: false, deleteMetricsAfter: () => {},
    hooks: { onStep: () => counts.push(tf.memory().numTensors) },
  });
  store.close();
  assert.equal(outcome.status, 'finished');
  assert.equal(counts.length, 12);
  // Steps with diagnostics, evaluation and checkpoints included: not one tensor more.
  assert.deepEqual(new Set(counts).size, 1, `tensor counts per step: ${counts}`);
  assert.equal(tf.memory().numTensors, before, 'everything is released when training ends');
});
