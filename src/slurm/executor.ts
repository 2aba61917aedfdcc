// `normlab sweep --executor slurm`: submit the runs that still need training as
// one job array, and show each run's Slurm task next to normlab's own state.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { planPath, runsDirOf, type Plan, type PlannedRun } from '../sweep/plan.ts';
import type { PlannedRunStatus } from '../sweep/state.ts';
import { isActive, queryTasks, submitScript, taskKey, type TaskState, type TaskStates } from './queue.ts';
import { renderScript, type ScriptOptions } from './script.ts';
import { latestTasks, readSubmissions, recordSubmission, type SlurmTask } from './submissions.ts';

/** What the user chose on the command line; the rest of the script follows from the plan. */
export type SubmitOptions = Pick<ScriptOptions, 'normlab' | 'taskArgs' | 'partition' | 'time' | 'gpusPerTask' | 'arrayParallel' | 'sbatchArgs'>;

/** runs/sweeps/<sweep>: the plan, the submission record, and slurm/ (scripts and task logs). */
export function sweepDir(plan: Plan): string {
  return path.resolve(path.dirname(planPath(runsDirOf(plan), plan.sweep)));
}

/** Each run's latest Slurm task, and what Slurm says about it. */
export interface SlurmView {
  tasks: Map<string, SlurmTask>;
  states: TaskStates;
}

export function slurmView(runIds: string[], tasks: Map<string, SlurmTask>): SlurmView {
  const jobIds = new Set(runIds.flatMap((id) => tasks.get(id)?.jobId ?? []));
  return { tasks, states: queryTasks([...jobIds]) };
}

export function sweepSlurmView(plan: Plan): SlurmView {
  return slurmView(plan.runs.map((r) => r.id), latestTasks(readSubmissions(sweepDir(plan))));
}

export function taskState(view: SlurmView, runId: string): TaskState | undefined {
  const task = view.tasks.get(runId);
  return task && view.states.tasks.get(taskKey(task.jobId, task.index));
}

/** "12_3 failed (exit 1)", "12_4 pending (Resources)", "12_2 unknown" (Slurm forgot it); '' if never submitted. */
export function slurmLabel(view: SlurmView, runId: string): string {
  const task = view.tasks.get(runId);
  if (!task) return '';
  const id = taskKey(task.jobId, task.index);
  const state = taskState(view, runId);
  if (!state) return `${id} unknown`;
  const detail = state.signal ? `signal ${state.signal}` : state.exitCode ? `exit ${state.exitCode}` : state.reason;
  return `${id} ${state.state.toLowerCase()}${detail ? ` (${detail})` : ''}`;
}

/**
 * The runs a submission takes: not finished or diverged, not being trained by a
 * live worker, and without a task of theirs still pending or running in Slurm.
 */
export function runsToSubmit(plan: Plan, statuses: PlannedRunStatus[], view: SlurmView): PlannedRun[] {
  return plan.runs.filter((run, i) => {
    const { state } = statuses[i]!;
    if (state === 'finished' || state === 'diverged' || state === 'running') return false;
    const task = taskState(view, run.id);
    return !(task && isActive(task));
  });
}

/** The script for these runs, as it would be written and submitted. */
export function scriptFor(plan: Plan, runs: PlannedRun[], o: SubmitOptions): string {
  const dir = sweepDir(plan);
  return renderScript({
    ...o, sweep: plan.sweep, source: plan.file,
    runs: runs.map((r) => ({ index: r.index, id: r.id })),
    planFile: path.join(dir, 'plan.json'), logDir: path.join(dir, 'slurm'), workDir: process.cwd(),
  });
}

export interface Submitted {
  jobId: string;
  script: string;
}

/** Writes the script next to the plan (written before), submits it and records the job with the sweep. */
export function submitRuns(plan: Plan, runs: PlannedRun[], o: SubmitOptions): Submitted {
  const dir = sweepDir(plan);
  const count = readSubmissions(dir).length;
  const script = path.join(dir, 'slurm', `submit-${count + 1}.sbatch`);
  mkdirSync(path.dirname(script), { recursive: true });
  writeFileSync(script, scriptFor(plan, runs, o), { mode: 0o755 });
  const jobId = submitScript(script);
  recordSubmission(dir, {
    jobId, submittedAt: new Date().toISOString(), script,
    runs: Object.fromEntries(runs.map((r) => [String(r.index), r.id])),
  });
  return { jobId, script };
}
