// A synthetic sweep in normlab's own store layout (written through RunStore, so
// the tables are exactly a real run's): per run a sweep-style runs/<run>/run.sqlite
// with train/loss, train/lr, train/grad_norm and train/tokens_per_s every step,
// val/loss and val/ppl every `evalEvery`, and per-block grad_norm / output_var
// and per-parameter grad_norm every `diagEvery` (normlab's defaults: 1 and 10).
//
//   node --import tsx scripts/synthetic-sweep.ts DIR [--runs 8] [--steps 100000]
//     [--layers 24] [--params 219] [--layout compact|text] [--compact]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resolveRunConfig } from '../src/config/load.ts';
import { RunStore, type Layout, type MetricBatch } from '../src/store/store.ts';

export interface SyntheticSweep {
  dir: string;
  runs: number;
  steps: number;
  layers: number;
  params: number;
  layout: Layout;
  diagEvery?: number;
  evalEvery?: number;
  /** Plant a loss spike at this step of run 0 (value `spike.value`). */
  spike?: { step: number; value: number };
  /** Repack each file at the end, as a finished run does. */
  compact?: boolean;
}

const STRATEGIES = ['post', 'pre', 'mix', 'lns'];

/** Parameter keys shaped like a LLaMA model's: 9 per block, then the embedding, final norm and head. */
export function paramKeys(layers: number, count: number): string[] {
  const perBlock = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'input_layernorm', 'post_attention_layernorm'];
  const keys = Array.from({ length: layers }, (_, l) => perBlock.map((p) => `model.layers.${l}.${p}.weight`)).flat();
  keys.push('model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight');
  return keys.slice(0, count);
}

/** Deterministic pseudo-noise in [-0.5, 0.5). */
const noise = (run: number, step: number, k: number) => {
  const x = Math.sin(run * 7919 + step * 12.9898 + k * 78.233) * 43758.5453;
  return x - Math.floor(x) - 0.5;
};

export function runIdOf(k: number): string {
  return `syn-${STRATEGIES[k % STRATEGIES.length]}-${Math.floor(k / STRATEGIES.length)}`;
}

/** Writes the sweep; returns the runs folder. */
export function writeSyntheticSweep(o: SyntheticSweep): string {
  const runsDir = join(o.dir, 'runs');
  const keys = paramKeys(o.layers, o.params);
  const diagEvery = o.diagEvery ?? 10, evalEvery = o.evalEvery ?? 1000;
  for (let k = 0; k < o.runs; k++) {
    const id = runIdOf(k);
    const norm = STRATEGIES[k % STRATEGIES.length]!;
    const seed = Math.floor(k / STRATEGIES.length);
    const config = resolveRunConfig({ name: id, model: { preset: '1b', n_layers: o.layers, norm }, train: { seed, steps: o.steps } }, 'synthetic');
    const store = RunStore.open(join(runsDir, id, 'run.sqlite'), { layout: o.layout });
    store.createRun({ id, name: id, sweep: 'synthetic', config, configHash: id, seed, backend: 'torch', totalSteps: o.steps, versions: {}, runDir: join(runsDir, id) });
    let batch: Required<MetricBatch> = { scalars: [], layers: [], params: [] };
    const flush = () => { store.writeMetrics(batch); batch = { scalars: [], layers: [], params: [] }; };
    for (let step = 1; step <= o.steps; step++) {
      let loss = 3 + 7 * Math.exp(-step / (o.steps / 20)) + 0.2 * noise(k, step, 0);
      if (k === 0 && o.spike?.step === step) loss = o.spike.value;
      batch.scalars.push(
        { runId: id, step, name: 'train/loss', value: loss },
        { runId: id, step, name: 'train/lr', value: 3e-4 * Math.min(1, step / 1000) },
        { runId: id, step, name: 'train/grad_norm', value: 1 + noise(k, step, 1) },
        { runId: id, step, name: 'train/tokens_per_s', value: 50_000 + 1000 * noise(k, step, 2) },
      );
      if (step % evalEvery === 0 || step === o.steps) {
        batch.scalars.push({ runId: id, step, name: 'val/loss', value: loss + 0.05 }, { runId: id, step, name: 'val/ppl', value: Math.exp(loss + 0.05) });
      }
      if (step % diagEvery === 0) {
        for (let l = 1; l <= o.layers; l++) {
          batch.layers.push(
            { runId: id, step, name: 'grad_norm', layer: l, value: (0.1 + l / o.layers) * (1 + 0.3 * noise(k, step, l + 3)) },
            { runId: id, step, name: 'output_var', layer: l, value: l * (1 + step / o.steps) },
          );
        }
        keys.forEach((param, p) => batch.params.push({ runId: id, step, name: 'grad_norm', param, value: 0.01 * (1 + p % 9) * (1.2 + noise(k, step, p + 40)) }));
      }
      if (batch.scalars.length + batch.layers.length + batch.params.length > 20_000) flush();
    }
    flush();
    store.heartbeat(id, o.steps);
    store.setStatus(id, 'finished');
    if (o.compact) store.compact();
    store.seal();
    store.close();
  }
  return runsDir;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string', default: '8' }, steps: { type: 'string', default: '100000' },
      layers: { type: 'string', default: '24' }, params: { type: 'string', default: '219' },
      layout: { type: 'string', default: 'compact' }, compact: { type: 'boolean', default: false },
    },
  });
  const dir = positionals[0];
  if (!dir || !['compact', 'text'].includes(values.layout)) {
    console.error('usage: synthetic-sweep.ts DIR [--runs N] [--steps N] [--layers N] [--params N] [--layout compact|text] [--compact]');
    process.exit(2);
  }
  const started = performance.now();
  const runsDir = writeSyntheticSweep({
    dir, runs: Number(values.runs), steps: Number(values.steps), layers: Number(values.layers), params: Number(values.params),
    layout: values.layout as Layout, compact: values.compact,
  });
  console.log(`wrote ${values.runs} runs × ${values.steps} steps (${values.layout}) to ${runsDir} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
