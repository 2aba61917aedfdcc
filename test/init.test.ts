import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../src/backend/index.ts';
import { Rng } from '../src/data/rng.ts';
import { checkModelConfig, INIT_SCHEMES, MODEL_DEFAULTS, type ModelConfig, ModelConfigError } from '../src/model/config.ts';
import { initialValue } from '../src/model/init.ts';
import { parameterShapes } from '../src/model/model.ts';
import type { Params } from '../src/model/norms.ts';
import { applyTvr, meanAndStd, rescaleToStd } from '../src/train/tvr.ts';

const BASE: ModelConfig = { ...MODEL_DEFAULTS, vocab_size: 512, d_model: 256, n_heads: 4, ffn_dim: 512, n_layers: 8 };

/** MODEL.md §7.9's table, written out independently of src/model/init.ts. */
function expectedStd(cfg: ModelConfig, key: string): number {
  const s = cfg.init_std, L = cfg.n_layers, d = cfg.d_model, F = cfg.ffn_dim;
  const m = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)_proj/.exec(key);
  if (!m) return s;
  const layer = Number(m[1]) + 1, name = m[3]!;
  const isOut = name === 'o' || name === 'down';
  const table: Record<string, number> = {
    normal: s,
    scaled: isOut ? s / Math.sqrt(2 * L) : s,
    depth_scaled: isOut ? s / Math.sqrt(2 * layer) : s,
    lir: s / Math.sqrt(layer),
    small: ['q', 'k', 'v', 'o'].includes(name) ? Math.sqrt(2 / (5 * d)) : Math.sqrt(2 / (d + F)),
  };
  const multiplied = ['v', 'o', 'gate', 'up', 'down'].includes(name);
  const strategy = cfg.norm === 'deepnorm' && multiplied ? (8 * L) ** -0.25 : cfg.norm === 'subln' && multiplied ? Math.sqrt(Math.log(2 * L)) : 1;
  return table[cfg.init]! * strategy;
}

for (const norm of ['pre', 'deepnorm', 'subln'] as const) {
  test(`every init scheme draws each ${norm} matrix with MODEL.md §7.9's std (7 standard errors)`, () => {
    for (const init of INIT_SCHEMES) {
      const cfg = { ...BASE, norm, init };
      const rng = new Rng(11);
      for (const [key, shape] of parameterShapes(cfg)) {
        const values = initialValue(cfg, key, shape, rng);
        if (shape.length < 2) continue;
        assert.ok(values.length >= 65536);
        const want = expectedStd(cfg, key);
        let sum = 0, sq = 0;
        for (const v of values) { sum += v; sq += v * v; }
        const mean = sum / values.length;
        const std = Math.sqrt(sq / values.length - mean * mean);
        assert.ok(Math.abs(std / want - 1) < 0.02, `${init} ${key}: std ${std} vs ${want}`);
        assert.ok(Math.abs(mean) < (5 * want) / Math.sqrt(values.length), `${init} ${key}: mean ${mean}`);
      }
    }
  });
}

test('fixed inits: ScaleNorm g = sqrt(n), GPAS gates 0, SkipInit 1/sqrt(L), LayerScale by depth, NormFormer scales 1', () => {
  const rng = new Rng(1);
  const value = (cfg: ModelConfig, key: string) => {
    const shape = parameterShapes(cfg).get(key);
    assert.ok(shape, key);
    return Array.from(initialValue(cfg, key, shape, rng));
  };
  const f32 = Math.fround;
  const small = { ...BASE, d_model: 32, ffn_dim: 48, n_heads: 4 };
  assert.deepEqual(value({ ...small, norm_type: 'scalenorm', qk_norm: true, norm: 'subln' }, 'model.layers.0.self_attn.q_norm.weight'), [f32(Math.sqrt(8))]);
  assert.deepEqual(value({ ...small, norm_type: 'scalenorm', norm: 'subln' }, 'model.layers.0.mlp.ffn_sub_norm.weight'), [f32(Math.sqrt(48))]);
  assert.deepEqual(value({ ...small, norm_type: 'scalenorm' }, 'model.norm.weight'), [f32(Math.sqrt(32))]);
  assert.deepEqual(value({ ...small, gpas: true }, 'model.layers.2.gpas_block.gate'), [0]);
  assert.deepEqual(value({ ...small, residual_scale: 'skipinit' }, 'model.layers.2.mlp_skip_scale'), [f32(1 / Math.sqrt(8))]);
  assert.deepEqual(new Set(value({ ...small, residual_scale: 'layerscale' }, 'model.layers.2.attn_layer_scale')), new Set([0.1].map(Math.fround)));
  assert.deepEqual(new Set(value({ ...small, n_layers: 24, residual_scale: 'layerscale' }, 'model.layers.2.attn_layer_scale')), new Set([Math.fround(1e-5)]));
  assert.deepEqual(new Set(value({ ...small, n_layers: 25, residual_scale: 'layerscale' }, 'model.layers.2.attn_layer_scale')), new Set([Math.fround(1e-6)]));
  assert.deepEqual(new Set(value({ ...small, residual_scale: 'layerscale', residual_scale_init: 0.5 }, 'model.layers.0.mlp_layer_scale')), new Set([0.5]));
  assert.deepEqual(new Set(value({ ...small, norm: 'normformer', normformer_resid_scale: true }, 'model.layers.1.resid_scale')), new Set([1]));
  assert.deepEqual(value({ ...small, norm: 'normformer' }, 'model.layers.1.self_attn.head_scale'), [1, 1, 1, 1]);
});

test('ngpt: every matrix unit along its axis, scales at their stored inits', () => {
  const cfg: ModelConfig = { ...BASE, norm: 'ngpt' };
  const rng = new Rng(3);
  const d = cfg.d_model;
  for (const [key, shape] of parameterShapes(cfg)) {
    const v = initialValue(cfg, key, shape, rng);
    if (shape.length === 2) {
      const [rows, cols] = shape as [number, number];
      const byColumn = /(o_proj|down_proj)\.weight$/.test(key);
      for (let a = 0; a < (byColumn ? cols : rows); a++) {
        let sq = 0;
        for (let b = 0; b < (byColumn ? rows : cols); b++) sq += Number(v[byColumn ? b * cols + a : a * cols + b]) ** 2;
        assert.ok(Math.abs(Math.sqrt(sq) - 1) < 1e-6, `${key} ${byColumn ? 'column' : 'row'} ${a}: norm ${Math.sqrt(sq)}`);
      }
      continue;
    }
    const expected = /(up_scale|gate_scale)$/.test(key) ? 1 : Math.fround(1 / Math.sqrt(d));
    assert.deepEqual(new Set(v), new Set([expected]), key);
  }
});

test('config rules of MODEL.md §7.1 are refused with the key named', () => {
  const refused: [Partial<ModelConfig>, string][] = [
    [{ norm: 'ngpt', qk_norm: true }, 'qk_norm'], [{ norm: 'ngpt', embed_norm: true }, 'embed_norm'],
    [{ norm: 'ngpt', gpas: true }, 'gpas'], [{ norm: 'ngpt', residual_scale: 'skipinit' }, 'residual_scale'],
    [{ norm: 'ngpt', tvr: true }, 'tvr'], [{ norm: 'ngpt', init: 'lir' }, 'init'],
    [{ norm: 'hybridnorm', gpas: true }, 'gpas'], [{ norm: 'subln', gpas: true }, 'gpas'],
    [{ norm: 'pre', normformer_resid_scale: true }, 'normformer_resid_scale'],
  ];
  for (const [fields, key] of refused) {
    assert.throws(() => checkModelConfig({ ...BASE, ...fields }), (e: unknown) => e instanceof ModelConfigError && e.key === key, JSON.stringify(fields));
  }
  for (const fields of [{ norm: 'normformer', qk_norm: true }, { norm: 'subln', qk_norm: true }, { residual_scale: 'skipinit', gpas: true }, { norm: 'peri', norm_type: 'scalenorm' }] as Partial<ModelConfig>[]) {
    assert.doesNotThrow(() => checkModelConfig({ ...BASE, ...fields }), JSON.stringify(fields));
  }
});

test('TVR: rescaled matrices hit the target std exactly, others stay bitwise', async () => {
  await useBackend('wasm');
  const cfg: ModelConfig = { ...BASE, d_model: 16, ffn_dim: 32, n_heads: 2, n_layers: 3, vocab_size: 20, tvr: true, tvr_interval: 5, tvr_target_std: 0.01 };
  const exact = rescaleToStd(Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 0.05 + 0.003), 0.01);
  assert.ok(Math.abs(meanAndStd(exact).std / 0.01 - 1) < 1e-12, 'float64 std equals the target to 1e-12');
  assert.ok(Math.abs(meanAndStd(exact).mean - meanAndStd(Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 0.05 + 0.003)).mean) < 1e-15);

  const rng = new Rng(5);
  const make = (ratio: number): Params => {
    const params: Params = {};
    for (const [key, shape] of parameterShapes(cfg)) {
      const v = initialValue(cfg, key, shape, rng);
      params[key] = tf.tensor(shape.length === 2 ? Float32Array.from(rescaleToStd(v, 0.01 * ratio)) : v, shape);
    }
    return params;
  };
  const params = make(2);
  const before = Object.fromEntries(Object.entries(params).map(([k, t]) => [k, t.dataSync().slice()]));
  assert.deepEqual(applyTvr(cfg, params, 4), [], 'nothing happens before step tvr_interval');
  const rescaled = applyTvr(cfg, params, 5);
  assert.equal(rescaled.length, 3 * 7, 'every block matrix, nothing else');
  for (const [key, t] of Object.entries(params)) {
    const v = t.dataSync();
    if (rescaled.includes(key)) {
      const { std, mean } = meanAndStd(v);
      assert.ok(Math.abs(std / 0.01 - 1) < 1e-6, `${key} std ${std} (float32 weights)`);
      assert.ok(Math.abs(mean - meanAndStd(before[key]!).mean) < 1e-9, `${key} mean kept`);
    } else {
      assert.deepEqual(v, before[key], `${key} untouched`);
    }
  }
  const below = make(1.19);
  const untouched = Object.fromEntries(Object.entries(below).map(([k, t]) => [k, t.dataSync().slice()]));
  assert.deepEqual(applyTvr(cfg, below, 5), [], 'ratio 1.19 < threshold 1.2');
  for (const [key, t] of Object.entries(below)) assert.deepEqual(t.dataSync(), untouched[key]);

  const deep = make(3);
  applyTvr({ ...cfg, tvr_scale_with_depth: true }, deep, 10);
  const std3 = meanAndStd(deep['model.layers.2.mlp.up_proj.weight']!.dataSync()).std;
  assert.ok(Math.abs(std3 / (0.01 / Math.sqrt(3)) - 1) < 1e-6, 'block 3 targets σ_t/sqrt(3)');
  tf.dispose([...Object.values(params), ...Object.values(below), ...Object.values(deep)]);
});
