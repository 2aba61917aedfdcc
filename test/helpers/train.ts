// Training a tiny run inside the test process, with its store in a temp dir.
import { join } from 'node:path';
import pino from 'pino';
import { resolveRunConfig } from '../../src/config/load.ts';
import type { RunConfig } from '../../src/config/schema.ts';
import { MetricBuffer, RunStore } from '../../src/store/store.ts';
import { train, type TrainHooks } from '../../src/train/trainer.ts';
import { trainingData } from '../../src/train/run.ts';
import { tempDir } from './cli.ts';

export function tinyConfig(model: object, trainOverrides: object = {}): { config: RunConfig; dir: string } {
  const dir = tempDir();
  const config = resolveRunConfig({
    name: 'inproc', model: { preset: 'nano', n_layers: 2, ...model },
    train: { steps: 4, batch_size: 2, seq_len: 16, warmup_steps: 1, eval_every: 2, eval_batches: 1, diag_every: 2, checkpoint_every: 0, ...trainOverrides },
    output: { runs_dir: join(dir, 'runs') },
  }, 'test');
  return { config, dir };
}

export async function trainInProcess(config: RunConfig, dir: string, hooks: TrainHooks = {}) {
  const store = RunStore.open(join(dir, 'runs', 'test.sqlite'));
  store.createRun({ id: 'r', name: 'r', config, configHash: 'h', seed: 0, backend: 'wasm', totalSteps: config.train.steps, versions: {}, runDir: dir });
  try {
    const outcome = await train({
      config, configHash: 'h', runDir: join(dir, 'run'), data: await trainingData(config), metrics: new MetricBuffer(store, 'r'),
      log: pino({ level: 'silent' }), resume: false, deleteMetricsAfter: () => {}, hooks,
    });
    return { outcome, losses: store.scalarSeries('r', 'train/loss').map((r) => r.value) };
  } finally {
    store.close();
  }
}
