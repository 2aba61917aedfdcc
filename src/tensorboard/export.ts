// `normlab export tensorboard`: stored runs as TensorBoard log folders, one per
// run (<out>/<run id>/), with the sweep's hparams experiment in <out>. A run's
// folder is written aside and renamed into place, so an export is never half
// written and a second export replaces the first.
import { readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { GatheredRun } from '../report/gather.ts';
import { EventWriter, type ExperimentInfo, type HParamValue } from './writer.ts';
import { hparamsOf, metricTag, sessionStatus } from './runs.ts';

const METRICS: ExperimentInfo['metrics'] = [
  { tag: 'val/loss', dataset: 'validation' }, { tag: 'val/ppl', dataset: 'validation' }, { tag: 'train/loss', dataset: 'training' },
];

export interface Exported {
  dirs: string[];
  events: number;
}

const seconds = (iso: string | null) => (iso ? Date.parse(iso) / 1000 : Date.now() / 1000);

export function exportTensorBoard(runs: GatheredRun[], out: string): Exported {
  const hparams = runs.map((r) => hparamsOf(r.record.config));
  const dirs: string[] = [];
  let events = 0;
  runs.forEach((run, i) => {
    const dir = path.join(out, run.record.id);
    const temp = `${dir}.partial`;
    rmSync(temp, { recursive: true, force: true });
    events += writeRun(run, hparams[i]!, temp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(temp, dir);
    dirs.push(dir);
  });
  // One experiment: an earlier export's is replaced, not added to.
  for (const f of readdirSync(out)) if (f.startsWith('events.out.tfevents.')) rmSync(path.join(out, f));
  const root = EventWriter.open(out);
  root.experiment({ hparams: experimentHParams(hparams), metrics: METRICS }, Date.now() / 1000);
  root.close();
  return { dirs, events };
}

/** One run's events; wall times are spread over its start and end by step (the store keeps no time per step). */
function writeRun(run: GatheredRun, hparams: Record<string, HParamValue>, dir: string): number {
  const { record, store } = run;
  const start = seconds(record.startedAt);
  const end = Math.max(start, seconds(record.endedAt ?? record.heartbeatAt));
  const at = (step: number) => start + ((end - start) * Math.min(step, record.totalSteps)) / Math.max(1, record.totalSteps);
  const w = EventWriter.open(dir);
  let n = 0;
  try {
    w.sessionStart(hparams, start, record.runDir);
    for (const m of store.metricRows(record.id)) {
      w.scalar(metricTag(m.kind, m.name, m.index, record.config.model.n_layers), m.step, m.value, at(m.step));
      n++;
    }
    if (record.status !== 'running') w.sessionEnd(sessionStatus(record.status), end);
  } finally {
    w.close();
  }
  return n;
}

/** Each hparam with the values the runs take, in order of first appearance. */
function experimentHParams(all: Record<string, HParamValue>[]): ExperimentInfo['hparams'] {
  const values = new Map<string, HParamValue[]>();
  for (const h of all) {
    for (const [k, v] of Object.entries(h)) {
      const seen = values.get(k) ?? values.set(k, []).get(k)!;
      if (!seen.includes(v)) seen.push(v);
    }
  }
  return [...values].map(([name, vs]) => ({ name, values: vs }));
}
