import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { useBackend } from '../src/backend/index.ts';
import { STRATEGIES } from '../src/model/config.ts';
import { readSafetensors } from '../src/model/safetensors.ts';
import { tinyConfig, trainInProcess } from './helpers/train.ts';

test('every strategy and modifier trains: finite, falling loss', async () => {
  await useBackend('wasm');
  const variants: object[] = [
    // Mix-LN needs ⌊α·L⌋ ≥ 1 Post-LN blocks to be Mix-LN at all (the config refuses less).
    ...STRATEGIES.map((norm) => (norm === 'mix' ? { norm, n_layers: 4 } : { norm })),
    { norm: 'pre', norm_type: 'layernorm', qk_norm: true }, { norm: 'peri', norm_type: 'scalenorm' },
    { norm: 'pre', gpas: true, gpas_gate_clip: 0.01 }, { norm: 'mix', gpas: true, n_layers: 4 }, { norm: 'deepnorm', gpas: true },
    { norm: 'pre', residual_scale: 'skipinit' }, { norm: 'lns', residual_scale: 'layerscale' },
    { norm: 'normformer', normformer_resid_scale: true }, { norm: 'pre', init: 'lir', tvr: true, tvr_interval: 2 },
  ];
  for (const model of variants) {
    const { config, dir } = tinyConfig(model, { steps: 6, lr: 1e-2 });
    const { outcome, losses } = await trainInProcess(config, dir);
    assert.equal(outcome.status, 'finished', JSON.stringify(model));
    assert.equal(losses.length, 6);
    assert.ok(losses.every(Number.isFinite), JSON.stringify(model));
    assert.ok(losses.at(-1)! < losses[0]!, `${JSON.stringify(model)}: ${losses}`);
  }
});

test('ngpt training keeps every matrix unit-norm after each step and applies no weight decay', async () => {
  await useBackend('wasm');
  const { config, dir } = tinyConfig({ norm: 'ngpt' }, { steps: 3, checkpoint_every: 3, weight_decay: 0.5, lr: 0.05 });
  const { outcome } = await trainInProcess(config, dir);
  assert.equal(outcome.status, 'finished');
  const checkpoints = join(dir, 'run', 'checkpoints');
  const weights = readSafetensors(join(checkpoints, readdirSync(checkpoints)[0]!, 'model.safetensors')).tensors;
  for (const [key, { shape, data }] of weights) {
    if (shape.length !== 2) continue;
    const [rows, cols] = shape as [number, number];
    const byColumn = /(o_proj|down_proj)\.weight$/.test(key);
    for (let a = 0; a < (byColumn ? cols : rows); a++) {
      let sq = 0;
      for (let b = 0; b < (byColumn ? rows : cols); b++) sq += data[byColumn ? b * cols + a : a * cols + b]! ** 2;
      assert.ok(Math.abs(Math.sqrt(sq) - 1) < 1e-5, `${key}: norm ${Math.sqrt(sq)}`);
    }
  }
});
