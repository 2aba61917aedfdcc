// The plan as text: the dry-run listing (one line per run, like Hydra's
// multirun listing) and the summary that closes a sweep.
import { existsSync } from 'node:fs';
import { RunStore } from '../store/store.ts';
import { align } from './align.ts';
import { formatOverrides, type Plan, type PlannedRun } from './plan.ts';
import type { PlannedRunStatus, RunState } from './state.ts';

/** A column shown before the overrides, e.g. each run's Slurm task. */
export interface ExtraColumn {
  header: string;
  cells: string[];
}

export function describePlan(plan: Plan, statuses: PlannedRunStatus[], extra?: ExtraColumn): string[] {
  const dup = plan.duplicates > 0 ? `, ${plan.duplicates} duplicate combination(s) dropped` : '';
  const header = `sweep ${plan.sweep}: ${plan.runs.length} runs (${plan.method}${dup}) from ${plan.file}`;
  const rows = plan.runs.map((run, i) => {
    const s = statuses[i]!;
    const more = extra ? [extra.cells[i]!] : [];
    return [`#${run.index}`, run.id, run.hash, stateLabel(s), `${s.record?.step ?? 0}/${run.config.train.steps}`, ...more, formatOverrides(run.overrides)];
  });
  const titles = ['#', 'run', 'config hash', 'status', 'step', ...(extra ? [extra.header] : []), 'overrides'];
  return [header, ...align([titles, ...rows])];
}

export function describeSummary(plan: Plan, statuses: PlannedRunStatus[]): string[] {
  const metric = plan.metric?.name ?? 'val/ppl';
  const counts = new Map<RunState, number>();
  for (const s of statuses) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
  const tally = [...counts].map(([state, n]) => `${n} ${state}`).join(', ');
  const values = plan.runs.map((run) => finalValue(run, metric));
  const rows = plan.runs.map((run, i) => {
    const s = statuses[i]!;
    const v = values[i];
    const why = s.state === 'failed' || s.state === 'diverged' ? (s.record?.error ?? '') : '';
    return [`#${run.index}`, run.id, stateLabel(s), v === undefined ? '—' : v.toPrecision(5), formatOverrides(run.overrides), why];
  });
  const lines = [`sweep ${plan.sweep}: ${tally}`, ...align([['#', 'run', 'status', metric, 'overrides', ''], ...rows])];
  const best = bestRun(plan, statuses, values);
  if (best) lines.push(`best ${metric} (${plan.metric?.goal ?? 'minimize'}): ${best.id} ${formatOverrides(best.overrides)}`);
  return lines;
}

function stateLabel(s: PlannedRunStatus): string {
  if (s.state === 'running' && s.claim) return `running (${s.claim.claim.worker ?? '?'} on ${s.claim.claim.host ?? '?'})`;
  return s.state;
}

function bestRun(plan: Plan, statuses: PlannedRunStatus[], values: (number | undefined)[]): PlannedRun | undefined {
  const sign = plan.metric?.goal === 'maximize' ? -1 : 1;
  let best: { run: PlannedRun; v: number } | undefined;
  plan.runs.forEach((run, i) => {
    const v = values[i];
    if (statuses[i]!.state !== 'finished' || v === undefined || !Number.isFinite(v)) return;
    if (!best || sign * v < sign * best.v) best = { run, v };
  });
  return best?.run;
}

/** The metric's last recorded value in the run's own database. */
function finalValue(run: PlannedRun, metric: string): number | undefined {
  try {
    if (!existsSync(run.config.output.db)) return undefined;
    const store = RunStore.open(run.config.output.db, { readonly: true });
    try {
      return store.lastScalar(run.id, metric);
    } finally {
      store.close();
    }
  } catch {
    return undefined; // an unreadable database has no value to show
  }
}

