// Reference cases of MODEL.md §6: load one, compute every quantity it holds
// with normlab's own model, diagnostics and optimizer, and compare.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { checkModelConfig, MODEL_DEFAULTS, type ModelConfig, NORM_TYPES, RESIDUAL_SCALES, STRATEGIES } from '../model/config.ts';
import { renormalize } from '../model/ngpt.ts';
import { Model, parameterShapes } from '../model/model.ts';
import type { Params } from '../model/norms.ts';
import { readSafetensors } from '../model/safetensors.ts';
import { type Batch, batchOf, forwardAnalysis, layerDrop } from '../metrics/analysis.ts';
import { gradNorms, gradSquareSums } from '../metrics/diagnostics.ts';
import { AdamW, clipFactor } from '../train/adamw.ts';
import { lossAndGrads } from '../train/step.ts';

export type Quantity = number | number[] | Record<string, number>;
export type Quantities = Record<string, Quantity>;

export interface ReferenceCase {
  name: string;
  dir: string;
  config: ModelConfig;
  weights: Map<string, { shape: number[]; data: Float32Array }>;
  tokens: number[][];
  expected: Quantities & { adamw?: AdamWExpectation };
}

interface AdamWExpectation {
  config: { lr: number; beta1: number; beta2: number; eps: number; weight_decay: number; clip_norm: number; steps: number; renormalize?: boolean };
  update_norms_step1: Record<string, number>;
  update_norms: Record<string, number>;
  loss_after_step1: number;
}

/** A case that names a strategy, norm or modifier this build does not know. */
export class UnsupportedCase extends Error {}

/** Case folders under `dir` (or `dir` itself when it is one case). */
export function findCases(dir: string): string[] {
  if (existsSync(join(dir, 'expected.json'))) return [dir];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'expected.json')))
    .map((e) => join(dir, e.name))
    .sort();
}

function caseModelConfig(raw: Record<string, unknown>, dir: string): ModelConfig {
  const unknown: string[] = [];
  if (!(STRATEGIES as readonly unknown[]).includes(raw.norm)) unknown.push(`norm: ${raw.norm}`);
  if (!(NORM_TYPES as readonly unknown[]).includes(raw.norm_type)) unknown.push(`norm_type: ${raw.norm_type}`);
  if (raw.residual_scale !== undefined && !(RESIDUAL_SCALES as readonly unknown[]).includes(raw.residual_scale)) unknown.push(`residual_scale: ${raw.residual_scale}`);
  if (unknown.length > 0) throw new UnsupportedCase(`${dir}: needs ${unknown.join(', ')}, which this build does not implement`);
  const config = { ...MODEL_DEFAULTS, ...raw } as ModelConfig & Record<string, unknown>;
  checkModelConfig(config);
  return config;
}

export function loadCase(dir: string): ReferenceCase {
  const json = (file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const raw = json('config.json');
  const config = caseModelConfig(raw, dir);
  return {
    name: raw.case ?? dir,
    dir,
    config,
    weights: readSafetensors(join(dir, 'weights.safetensors')).tensors,
    tokens: json('batch.json').tokens,
    expected: json('expected.json'),
  };
}

function loadParams(c: ReferenceCase, model: Model): Params {
  const params: Params = {};
  for (const [key, { shape, data }] of c.weights) params[key] = tf.tensor(data, shape);
  const missing = [...modelKeys(model)].filter((k) => !(k in params));
  const unexpected = Object.keys(params).filter((k) => !modelKeys(model).has(k));
  if (missing.length || unexpected.length) {
    tf.dispose(Object.values(params));
    throw new Error(`${c.dir}: weights do not match the ${c.config.norm} model: missing [${missing}], unexpected [${unexpected}]`);
  }
  return params;
}

const modelKeys = (model: Model) => new Set(parameterShapes(model.cfg).keys());

function forwardQuantities(model: Model, params: Params, batch: Batch, shape: { B: number; T: number }): Quantities {
  const a = forwardAnalysis(model, params, batch, true);
  const V = model.cfg.vocab_size;
  const lastRow = ((shape.B - 1) * shape.T + (shape.T - 1)) * V;
  return {
    loss: a.loss,
    logits_first: Array.from(a.logits!.subarray(0, 8)),
    logits_last: Array.from(a.logits!.subarray(lastRow, lastRow + 8)),
    hidden_var: a.hiddenVar,
    layer_output_var: a.hiddenVar.slice(1),
    angular_adjacent: a.angular[0]!,
    layer_drop_loss_delta: layerDrop(model, params, batch, a.loss),
  };
}

function gradientQuantities(model: Model, params: Params, tokens: tf.Tensor2D): Quantities {
  const { loss, grads } = lossAndGrads(model, params, tokens);
  const sumSquares = gradSquareSums(grads);
  tf.dispose([loss, ...Object.values(grads)]);
  const norms = gradNorms(sumSquares, model.cfg.n_layers);
  return {
    grad_norm_total: norms.total,
    grad_norms: Object.fromEntries(norms.perParam),
    layer_grad_norms: norms.perLayer,
  };
}

function updateNorms(from: Map<string, Float32Array>, params: Params): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, before] of from) {
    const after = params[key]!.dataSync();
    let sq = 0;
    for (let i = 0; i < before.length; i++) sq += (after[i]! - before[i]!) ** 2;
    out[key] = Math.sqrt(sq);
  }
  return out;
}

/** Two AdamW steps from the stored weights, as MODEL.md §6 `adamw` describes. */
function adamwQuantities(model: Model, params: Params, tokens: tf.Tensor2D, batch: Batch, spec: AdamWExpectation['config']): Quantities {
  const initial = new Map(Object.entries(params).map(([k, t]) => [k, t.dataSync() as Float32Array]));
  const optimizer = new AdamW(spec, params);
  const step = () => {
    const { loss, grads } = lossAndGrads(model, params, tokens);
    const total = gradNorms(gradSquareSums(grads), model.cfg.n_layers).total;
    optimizer.apply(params, grads, spec.lr, clipFactor(total, spec.clip_norm));
    if (spec.renormalize) renormalize(params);
    tf.dispose([loss, ...Object.values(grads)]);
  };
  step();
  const update_norms_step1 = updateNorms(initial, params);
  const loss_after_step1 = forwardAnalysis(model, params, batch).loss;
  step();
  optimizer.dispose();
  return { update_norms_step1, update_norms: updateNorms(initial, params), loss_after_step1 };
}

/** Every quantity `expected.json` holds, computed by normlab. */
export function computeCase(c: ReferenceCase): Quantities {
  const model = new Model(c.config);
  const params = loadParams(c, model);
  const tokens = tf.tensor2d(c.tokens, undefined, 'int32');
  const batch = batchOf(c.tokens);
  const shape = { B: c.tokens.length, T: c.tokens[0]!.length - 1 };
  try {
    const got: Quantities = { ...forwardQuantities(model, params, batch, shape), ...gradientQuantities(model, params, tokens) };
    if (c.expected.adamw) {
      for (const [k, v] of Object.entries(adamwQuantities(model, params, tokens, batch, c.expected.adamw.config))) got[`adamw.${k}`] = v;
    }
    return got;
  } finally {
    tf.dispose([tokens, batch.inputs, ...Object.values(params)]);
    model.dispose();
  }
}

export interface Comparison {
  quantity: string;
  maxRelError: number;
  ok: boolean;
  detail?: string;
}

/** MODEL.md §6 tolerance: 1e-4 relative plus an absolute term (2e-5 for ill-conditioned quantities). */
function absoluteTolerance(quantity: string): number {
  return quantity === 'angular_adjacent' || quantity === 'layer_drop_loss_delta' ? 2e-5 : 1e-6;
}

function flatten(q: Quantity | undefined): Map<string, number> {
  if (q === undefined) return new Map();
  if (typeof q === 'number') return new Map([['', q]]);
  if (Array.isArray(q)) return new Map(q.map((v, i) => [`[${i}]`, v]));
  return new Map(Object.entries(q));
}

export function compareCase(expected: ReferenceCase['expected'], got: Quantities): Comparison[] {
  const wanted: [string, Quantity][] = Object.entries(expected).flatMap(([k, v]): [string, Quantity][] =>
    k === 'adamw'
      ? Object.entries(v as AdamWExpectation).filter(([sub]) => sub !== 'config').map(([sub, x]) => [`adamw.${sub}`, x as Quantity])
      : [[k, v as Quantity]]);
  return wanted.map(([quantity, exp]) => {
    const e = flatten(exp), g = flatten(got[quantity]);
    let maxRelError = 0, ok = true, detail: string | undefined;
    for (const [index, ev] of e) {
      const gv = g.get(index);
      if (gv === undefined || !Number.isFinite(gv)) {
        ok = false;
        detail = `${index || 'value'} missing or not finite`;
        continue;
      }
      const err = Math.abs(gv - ev);
      maxRelError = Math.max(maxRelError, err / Math.max(Math.abs(ev), 1e-30));
      if (err > 1e-4 * Math.abs(ev) + absoluteTolerance(quantity)) {
        ok = false;
        detail ??= `${index || 'value'}: got ${gv}, expected ${ev}`;
      }
    }
    return { quantity, maxRelError, ok, detail };
  });
}
