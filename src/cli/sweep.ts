// normlab sweep <sweep.yaml> [--dry-run] [--status] [--workers N | --executor slurm …],
// and the internal commands a worker process (`sweep-worker`) and a Slurm array
// task (`sweep-task`) run.
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { torchDevice } from '../backend/torch/index.ts';
import { arraySpec } from '../slurm/script.ts';
import { runsToSubmit, scriptFor, slurmLabel, submitRuns, sweepDir, sweepSlurmView, type SubmitOptions } from '../slurm/executor.ts';
import { SlurmError } from '../slurm/queue.ts';
import { currentOwner } from '../sweep/claims.ts';
import { dataLabel, ESTIMATE_RATE, estimateRun, shortCount } from '../sweep/estimate.ts';
import { describePlan, describeSummary } from '../sweep/describe.ts';
import { detectGpus, launchWorkers, workerEnv } from '../sweep/launch.ts';
import { expandSweep, readPlan, writePlan, type Plan } from '../sweep/plan.ts';
import { loadSweep } from '../sweep/sweepfile.ts';
import { runStatus, type PlannedRunStatus } from '../sweep/state.ts';
import { followRun, runWorker, trainOneRun, type WorkerOptions } from '../sweep/worker.ts';
import { rankEnv } from '../distributed/launch-env.ts';
import { joinDataParallel } from '../distributed/replica.ts';
import { startBackend, UsageError } from './common.ts';
import type { SetExitCode } from './main.ts';
import { EXIT } from './train.ts';
import { runVersions } from '../train/provenance.ts';

/** A worker exits with this when another worker took its run over: it wrote nothing more. */
const EXIT_CLAIM_LOST = 75;

export interface SweepFlags {
  dryRun?: boolean;
  status?: boolean;
  executor: 'local' | 'slurm';
  workers: string;
  backend: string;
  staleAfter: string;
  partition?: string;
  gpusPerTask?: string;
  time?: string;
  arrayParallel?: string;
  sbatchArg: string[];
}

export interface WorkerFlags {
  worker: string;
  since: string;
  backend: string;
  staleAfter: string;
}

export interface TaskFlags {
  run: string;
  backend: string;
  staleAfter: string;
}

/** Flags that only mean something to one executor: giving them to the other is a mistake worth naming. */
const SLURM_FLAGS = ['partition', 'gpusPerTask', 'time', 'arrayParallel', 'sbatchArg'] as const;
const LOCAL_FLAGS = ['workers'] as const;

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} expects a whole number ≥ 1, got ${text}`);
  return n;
}

/** --workers: at most 4 per core (or one per GPU, if more): each worker is a process holding a model. */
function workerCount(text: string): number {
  const n = positiveInt(text, '--workers');
  const cores = availableParallelism();
  const limit = Math.max(4 * cores, n <= 4 * cores ? 0 : detectGpus().length);
  if (n > limit) throw new UsageError(`--workers ${n}: at most ${limit} on this machine (4 per core, ${cores} cores; or one per GPU)`);
  return n;
}

/** normlab sweep: its flags are declared in sweep-command.ts, which imports this module only when the command runs. */
export async function sweepCommand(file: string, flags: SweepFlags, command: Command, setExitCode: SetExitCode): Promise<void> {
  checkExecutorFlags(command, flags.executor);
  const staleAfterMs = positiveInt(flags.staleAfter, '--stale-after') * 1000;
  const plan = expandSweep(loadSweep(file));
  const statuses = () => plan.runs.map((r) => runStatus(r, staleAfterMs));
  if (flags.status) {
    printStatus(plan, statuses());
    return;
  }
  if (flags.executor === 'slurm') {
    submitToSlurm(plan, statuses(), flags, globalArgs(command));
    return;
  }
  if (flags.dryRun) {
    const estimates = plan.runs.map((r) => estimateRun(r.config));
    const cells = plan.runs.map((r, i) => `${dataLabel(r.config)}  ${shortCount(estimates[i]!.tokens)} tokens  ${estimates[i]!.gpuHours.toFixed(1)} GPU-h`);
    for (const line of describePlan(plan, statuses(), { header: 'data, tokens, cost', cells })) console.log(line);
    const total = estimates.reduce((n, e) => n + e.gpuHours, 0);
    console.log(`total ${shortCount(estimates.reduce((n, e) => n + e.tokens, 0))} tokens, ${total.toFixed(0)} ${ESTIMATE_RATE}`);
    return;
  }
  const workers = workerCount(flags.workers);
  const planFile = writePlan(plan);
  const interrupted = await runWorkers(plan, planFile, workers, flags, globalArgs(command));
  for (const line of describeSummary(plan, statuses())) console.log(line);
  setExitCode(sweepExitCode(statuses().map((s) => s.state), interrupted));
}

/** normlab sweep-worker (internal). */
export async function sweepWorkerCommand(file: string, flags: WorkerFlags, setExitCode: SetExitCode): Promise<void> {
  setExitCode(await workerMain(readPlan(file), flags));
}

/** normlab sweep-task (internal). */
export async function sweepTaskCommand(file: string, flags: TaskFlags, setExitCode: SetExitCode): Promise<void> {
  setExitCode(await arrayTaskMain(file, flags));
}

function checkExecutorFlags(command: Command, executor: string): void {
  const misplaced = executor === 'slurm' ? LOCAL_FLAGS : SLURM_FLAGS;
  const given = misplaced.filter((name) => command.getOptionValueSource(name) === 'cli');
  if (given.length === 0) return;
  const names = given.map((name) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ');
  throw new UsageError(`${names}: only with ${executor === 'slurm' ? '--executor local' : '--executor slurm'}`);
}

/** The plan with normlab's state of each run and, for runs submitted to Slurm, their task's state. */
function printStatus(plan: Plan, statuses: PlannedRunStatus[]): void {
  const view = sweepSlurmView(plan);
  for (const problem of view.states.problems) console.error(`normlab: warning: ${problem}`);
  const slurm = view.tasks.size > 0 ? { header: 'slurm', cells: plan.runs.map((r) => slurmLabel(view, r.id)) } : undefined;
  for (const line of describePlan(plan, statuses, slurm)) console.log(line);
  if (slurm) console.log(`task output: ${sweepDir(plan)}/slurm/<job>_<index>.out and .err`);
}

/** Submits, as one job array, every run not finished and not already queued or running; --dry-run prints the script. */
function submitToSlurm(plan: Plan, statuses: PlannedRunStatus[], flags: SweepFlags, globals: string[]): void {
  const view = sweepSlurmView(plan);
  if (view.states.problems.length > 0 && !flags.dryRun) {
    // Not knowing whether earlier tasks still run, a submission could train a run twice at once.
    throw new SlurmError(`cannot tell which of this sweep's runs Slurm is still running: ${view.states.problems.join('; ')}`);
  }
  const runs = runsToSubmit(plan, statuses, view);
  if (runs.length === 0) {
    console.log(`sweep ${plan.sweep}: nothing to submit; every run is finished, diverged, or queued or running (normlab sweep ${plan.file} --status)`);
    return;
  }
  const options = submitOptions(flags, globals);
  if (flags.dryRun) {
    process.stdout.write(scriptFor(plan, runs, options));
    return;
  }
  writePlan(plan);
  const { jobId, script } = submitRuns(plan, runs, options);
  const array = arraySpec(runs.map((r) => r.index));
  console.log(`sweep ${plan.sweep}: submitted ${runs.length} of ${plan.runs.length} runs as Slurm job ${jobId} (array ${array}); script ${script}`);
  console.log(`follow it with: normlab sweep ${plan.file} --status`);
}

function submitOptions(flags: SweepFlags, globals: string[]): SubmitOptions {
  if (flags.time !== undefined && !/^(\d+-)?\d+(:\d+){0,2}$/.test(flags.time)) {
    throw new UsageError(`--time expects a Slurm time limit (HH:MM:SS, D-HH:MM:SS or minutes), got ${flags.time}`);
  }
  return {
    // process.argv[1] is bin/normlab (absolute): tasks run the same CLI with the same node.
    normlab: [process.execPath, process.argv[1]!, ...globals],
    taskArgs: ['--backend', flags.backend, '--stale-after', flags.staleAfter],
    sbatchArgs: flags.sbatchArg,
    ...(flags.partition !== undefined && { partition: flags.partition }),
    ...(flags.time !== undefined && { time: flags.time }),
    ...(flags.gpusPerTask !== undefined && { gpusPerTask: positiveInt(flags.gpusPerTask, '--gpus-per-task') }),
    ...(flags.arrayParallel !== undefined && { arrayParallel: positiveInt(flags.arrayParallel, '--array-parallel') }),
  };
}

/** Options given before the command (e.g. `normlab --device cuda sweep …`), for the workers' command lines. */
function globalArgs(command: Command): string[] {
  const parent = command.parent;
  if (!parent || parent.getOptionValueSource('device') === 'default') return [];
  return ['--device', parent.opts().device as string];
}

/** Spawns the workers and waits for them; true when the sweep was stopped by a signal. */
async function runWorkers(plan: Plan, planFile: string, count: number, flags: SweepFlags, globals: string[]): Promise<boolean> {
  const gpus = detectGpus();
  const since = new Date().toISOString();
  console.log(`sweep ${plan.sweep}: ${plan.runs.length} runs, ${count} worker(s)${gpus.length ? `, GPUs ${gpus.join(',')}` : ''}; plan ${planFile}`);
  const args = (k: number) => [
    ...globals, 'sweep-worker', planFile, '--worker', `w${k + 1}`, '--since', since,
    '--backend', flags.backend, '--stale-after', flags.staleAfter,
  ];
  // process.argv[1] is bin/normlab: workers start the same CLI.
  const { children, done } = launchWorkers(count, process.argv[1]!, args, (k) => workerEnv(k, count, gpus));
  let interrupted = false;
  const forward = (signal: NodeJS.Signals) => {
    interrupted = true;
    for (const c of children) c.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const codes = await done;
    if (!interrupted) reportDeadWorkers(children.map((c, k) => ({ worker: `w${k + 1}`, code: codes[k]!, signal: c.signalCode })));
    return interrupted || codes.includes(EXIT.killed);
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

/** Exit codes a worker ends with on its own; anything else (a signal, an abort) means it died. */
const WORKER_EXITS: (number | null)[] = [EXIT.finished, EXIT.failed, EXIT.killed, EXIT_CLAIM_LOST];

function reportDeadWorkers(ends: { worker: string; code: number | null; signal: NodeJS.Signals | null }[]): void {
  for (const { worker, code, signal } of ends) {
    if (signal === null && WORKER_EXITS.includes(code)) continue;
    console.error(`normlab: worker ${worker} died (${signal ? `killed by ${signal}` : `exit ${code}`}); the run it held is interrupted and resumes from its checkpoint on the next \`normlab sweep\``);
  }
}

function sweepExitCode(states: string[], interrupted: boolean): number {
  if (interrupted) return EXIT.killed;
  if (states.some((s) => s !== 'finished' && s !== 'diverged')) return EXIT.failed;
  return EXIT.finished;
}

/** What a worker or an array task needs: its backend, its name in claims, and SIGINT / SIGTERM turned into a checkpoint and stop. */
async function workerOptions(plan: Plan, worker: string, since: string, flags: { backend: string; staleAfter: string }, cudaIndex = 0): Promise<WorkerOptions> {
  const backend = await startBackend(flags.backend, cudaIndex);
  const say = (text: string) => console.log(`[${worker}] ${text}`);
  let stop = false;
  const onSignal = () => { stop = true; };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const gpu = process.env.CUDA_VISIBLE_DEVICES;
  say(`backend ${backend.name} (${backend.version})${gpu !== undefined ? `, CUDA_VISIBLE_DEVICES=${gpu}` : ''}, pid ${process.pid}`);
  return {
    plan, owner: currentOwner(worker), since,
    staleAfterMs: positiveInt(flags.staleAfter, '--stale-after') * 1000,
    backend: backend.name,
    versions: runVersions(backend, torchDevice()),
    stopRequested: () => stop,
    onClaimLost: (run) => {
      console.error(`[${worker}] ${run.id} was taken over by another worker (our heartbeat went stale); stopping without writing`);
      process.exit(EXIT_CLAIM_LOST);
    },
    say,
  };
}

async function workerMain(plan: Plan, flags: WorkerFlags): Promise<number> {
  const o = await workerOptions(plan, flags.worker, flags.since, flags);
  const result = await runWorker(o);
  o.say(result.stopped ? 'stopped' : `done (${result.trained.length} run(s) trained here)`);
  return result.stopped ? EXIT.killed : EXIT.finished;
}

/** An array task exits as `normlab train` would for its run, so Slurm's ExitCode tells how the run ended. */
const TASK_EXIT: Record<string, number> = { finished: EXIT.finished, diverged: EXIT.diverged, failed: EXIT.failed, killed: EXIT.killed };

async function arrayTaskMain(planFile: string, flags: TaskFlags): Promise<number> {
  const plan = readPlan(planFile);
  const run = plan.runs.find((r) => r.id === flags.run);
  if (!run) {
    throw new UsageError(`run ${flags.run || '(none)'} is not in ${planFile}: the sweep file changed since this job was submitted, `
      + 'or SLURM_ARRAY_TASK_ID is not one of the script\'s indices; submit the sweep again');
  }
  const { SLURM_ARRAY_JOB_ID: job, SLURM_ARRAY_TASK_ID: index } = process.env;
  // --gpus-per-task N: srun started this task as one of N ranks (SLURM_PROCID …); rank 0 claims the run and writes it.
  const launch = rankEnv();
  const name = (job ? `slurm-${job}_${index}` : 'task') + (launch ? `-rank${launch.rank}` : '');
  const o = await workerOptions(plan, name, new Date().toISOString(), flags, launch?.localRank);
  o.replica = launch && joinDataParallel(launch, run.config.train.batch_size);
  try {
    const status = o.replica && !o.replica.writes ? await followRun(run, o) : await trainOneRun(run, o);
    if (status === null) o.say(`${run.id} had already ended; nothing to do`);
    return status === null ? EXIT.finished : TASK_EXIT[status] ?? EXIT.failed;
  } finally {
    o.replica?.destroy();
  }
}
