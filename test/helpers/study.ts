// A small fake sweep in a runs folder, with known metrics: three strategies ×
// two seeds on a 4-block model, one run diverged (its last losses NaN), layer
// analyses on two runs. Its values are functions of (run, step, block), so a
// test can compare what an export or a page holds with what was stored.
import { join } from 'node:path';
import { resolveRunConfig } from '../../src/config/load.ts';
import { AnalysisStore, row } from '../../src/store/analyses.ts';
import { RunStore } from '../../src/store/store.ts';
import { tempDir } from './cli.ts';

export interface StudyRun {
  id: string;
  norm: string;
  seed: number;
  diverged?: boolean;
  analysed?: boolean;
}

export const STUDY_RUNS: StudyRun[] = [
  { id: 's-pre-0', norm: 'pre', seed: 0, analysed: true },
  { id: 's-pre-1', norm: 'pre', seed: 1 },
  { id: 's-post-0', norm: 'post', seed: 0 },
  { id: 's-post-1', norm: 'post', seed: 1, diverged: true },
  { id: 's-mix-0', norm: 'mix', seed: 0, analysed: true },
  { id: 's-mix-1', norm: 'mix', seed: 1 },
];
export const STUDY_LAYERS = 4;
export const STUDY_STEPS = 40;
export const DIAG_STEPS = [10, 20, 30, 40];
export const VAL_STEPS = [20, 40];

const k = (r: StudyRun) => STUDY_RUNS.indexOf(r);
export const lossAt = (r: StudyRun, s: number) => (r.diverged && s > 30 ? NaN : 5 - s * 0.05 + 0.3 * Math.sin(s + k(r)));
export const valLossAt = (r: StudyRun, s: number) => 4.5 - s * 0.04 - k(r) * 0.01;
export const gradAt = (r: StudyRun, s: number, b: number) => 0.1 * b + s / 100 + k(r) / 1000;
export const varAt = (r: StudyRun, s: number, b: number) => b * b * (1 + s / 10) + k(r) / 100;

/** Writes the study under a fresh folder; returns its runs folder. */
export function writeStudy(): string {
  const dir = join(tempDir('normlab-study-'), 'runs');
  for (const r of STUDY_RUNS) {
    const config = resolveRunConfig({ name: 's', model: { preset: 'nano', n_layers: STUDY_LAYERS, norm: r.norm }, train: { seed: r.seed, steps: STUDY_STEPS } }, 'test');
    const store = RunStore.open(join(dir, r.id, 'run.sqlite'));
    store.createRun({
      id: r.id, name: 's', sweep: 's', config, configHash: r.id, seed: r.seed,
      backend: 'wasm', totalSteps: STUDY_STEPS, versions: {}, runDir: join(dir, r.id),
    });
    const steps = Array.from({ length: STUDY_STEPS }, (_, i) => i + 1);
    const scalar = (step: number, name: string, value: number) => ({ runId: r.id, step, name, value });
    store.writeMetrics({
      scalars: [
        ...steps.flatMap((s) => [
          scalar(s, 'train/loss', lossAt(r, s)), scalar(s, 'train/lr', 1e-3 * s / STUDY_STEPS),
          scalar(s, 'train/grad_norm', 1 + s / 10), scalar(s, 'train/tokens_per_s', 1000 + s),
        ]),
        ...VAL_STEPS.flatMap((s) => [scalar(s, 'val/loss', valLossAt(r, s)), scalar(s, 'val/ppl', Math.exp(valLossAt(r, s)))]),
      ],
      layers: DIAG_STEPS.flatMap((s) => Array.from({ length: STUDY_LAYERS }, (_, i) => [
        { runId: r.id, step: s, name: 'grad_norm', layer: i + 1, value: gradAt(r, s, i + 1) },
        { runId: r.id, step: s, name: 'output_var', layer: i + 1, value: varAt(r, s, i + 1) },
      ]).flat()),
    });
    store.heartbeat(r.id, r.diverged ? 31 : STUDY_STEPS);
    store.setStatus(r.id, r.diverged ? 'diverged' : 'finished', r.diverged ? { divergedStep: 31, error: 'loss is NaN at step 31' } : {});
    store.close();
    if (r.analysed) writeAnalyses(store.file, r);
  }
  return dir;
}

const STUDY_SET = { key: 'validation first 8 (packed) seq 16 data 0123456789abcdef', backend: 'cpu', precision: 'fp32' };

function writeAnalyses(file: string, r: StudyRun): void {
  const a = AnalysisStore.open(file);
  const blocks = Array.from({ length: STUDY_LAYERS }, (_, i) => i + 1);
  a.write(r.id, 40, 'angular', STUDY_SET, blocks.flatMap((n) => Array.from({ length: STUDY_LAYERS - n + 1 }, (_, i) => row(i, (i + n) / 10, { n }))));
  a.write(r.id, 40, 'variance', STUDY_SET, [0, ...blocks].map((l) => row(l, (l + 1) ** 2)));
  a.write(r.id, 40, 'max_abs', STUDY_SET, blocks.map((b) => row(b, 10 * b)));
  a.write(r.id, 40, 'loss', STUDY_SET, [row(0, 2.5)]);
  a.write(r.id, 40, 'layer_drop', STUDY_SET, blocks.map((b) => row(b, (b - 2) * 0.01)));
  a.close();
}
