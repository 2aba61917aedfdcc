// normlab sweep <sweep.yaml> [--dry-run] [--workers N] …, and the internal
// `sweep-worker` command each worker process runs.
import { Option, type Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { currentOwner } from '../sweep/claims.ts';
import { describePlan, describeSummary } from '../sweep/describe.ts';
import { detectGpus, launchWorkers, workerEnv } from '../sweep/launch.ts';
import { expandSweep, readPlan, writePlan, type Plan } from '../sweep/plan.ts';
import { loadSweep } from '../sweep/sweepfile.ts';
import { runStatus } from '../sweep/state.ts';
import { runWorker } from '../sweep/worker.ts';
import { backendOption, startBackend, UsageError } from './common.ts';
import type { SetExitCode } from './main.ts';
import { EXIT } from './train.ts';
import { VERSION } from './version.ts';

/** A worker exits with this when another worker took its run over: it wrote nothing more. */
const EXIT_CLAIM_LOST = 75;

interface SweepFlags {
  dryRun?: boolean;
  workers: string;
  backend: string;
  staleAfter: string;
}

interface WorkerFlags {
  worker: string;
  since: string;
  backend: string;
  staleAfter: string;
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} expects a whole number ≥ 1, got ${text}`);
  return n;
}

const staleAfterOption = () =>
  new Option('--stale-after <seconds>', 'take over a run whose worker has not sent a heartbeat for this long').default('300');

export function registerSweep(program: Command, setExitCode: SetExitCode): void {
  program
    .command('sweep')
    .description('run every run of a sweep file; rerunning it completes only what is missing')
    .argument('<sweep>', 'sweep file (YAML, a subset of the W&B sweep format)')
    .option('--dry-run', 'print the plan (one line per run: overrides, config hash, status) and exit')
    .option('--workers <n>', 'worker processes on this machine (one GPU each where there are GPUs)', '1')
    .addOption(backendOption())
    .addOption(staleAfterOption())
    .action(async (file: string, flags: SweepFlags, command: Command) => {
      const workers = positiveInt(flags.workers, '--workers');
      const staleAfterMs = positiveInt(flags.staleAfter, '--stale-after') * 1000;
      const plan = expandSweep(loadSweep(file));
      const statuses = () => plan.runs.map((r) => runStatus(r, staleAfterMs));
      if (flags.dryRun) {
        for (const line of describePlan(plan, statuses())) console.log(line);
        return;
      }
      const planFile = writePlan(plan);
      const interrupted = await runWorkers(plan, planFile, workers, flags, globalArgs(command));
      for (const line of describeSummary(plan, statuses())) console.log(line);
      setExitCode(sweepExitCode(statuses().map((s) => s.state), interrupted));
    });

  program
    .command('sweep-worker', { hidden: true })
    .description('(internal) one worker of `normlab sweep`: trains runs of a plan until none is left')
    .argument('<plan>', 'plan.json written by normlab sweep')
    .requiredOption('--worker <id>', 'this worker\'s name in claims and output')
    .requiredOption('--since <iso-time>', 'when the sweep started: runs that failed since are not retried')
    .addOption(backendOption())
    .addOption(staleAfterOption())
    .action(async (file: string, flags: WorkerFlags) => {
      setExitCode(await workerMain(readPlan(file), flags));
    });
}

/** Spawns the workers and waits for them; true when the sweep was stopped by a signal. */
/** Options given before the command (e.g. `normlab --device cuda sweep …`), for the workers' command lines. */
function globalArgs(command: Command): string[] {
  const device = command.parent?.opts().device as string | undefined;
  return device !== undefined ? ['--device', device] : [];
}

async function runWorkers(plan: Plan, planFile: string, count: number, flags: SweepFlags, globals: string[]): Promise<boolean> {
  const gpus = detectGpus();
  const since = new Date().toISOString();
  console.log(`sweep ${plan.sweep}: ${plan.runs.length} runs, ${count} worker(s)${gpus.length ? `, GPUs ${gpus.join(',')}` : ''}; plan ${planFile}`);
  const args = (k: number) => [
    ...globals, 'sweep-worker', planFile, '--worker', `w${k + 1}`, '--since', since,
    '--backend', flags.backend, '--stale-after', flags.staleAfter,
  ];
  // process.argv[1] is bin/normlab: workers start the same CLI.
  const { children, done } = launchWorkers(count, process.argv[1]!, args, (k) => workerEnv(k, gpus));
  let interrupted = false;
  const forward = (signal: NodeJS.Signals) => {
    interrupted = true;
    for (const c of children) c.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const codes = await done;
    return interrupted || codes.includes(EXIT.killed);
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

function sweepExitCode(states: string[], interrupted: boolean): number {
  if (interrupted) return EXIT.killed;
  if (states.some((s) => s !== 'finished' && s !== 'diverged')) return EXIT.failed;
  return EXIT.finished;
}

async function workerMain(plan: Plan, flags: WorkerFlags): Promise<number> {
  const backend = await startBackend(flags.backend);
  const say = (text: string) => console.log(`[${flags.worker}] ${text}`);
  let stop = false;
  const onSignal = () => { stop = true; };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const gpu = process.env.CUDA_VISIBLE_DEVICES;
  say(`backend ${backend.name} (${backend.version})${gpu !== undefined ? `, CUDA_VISIBLE_DEVICES=${gpu}` : ''}, pid ${process.pid}`);
  const result = await runWorker({
    plan, owner: currentOwner(flags.worker), since: flags.since,
    staleAfterMs: positiveInt(flags.staleAfter, '--stale-after') * 1000,
    backend: backend.name,
    versions: { normlab: VERSION, node: process.version, tfjs: tf.version.tfjs, backend: `${backend.name} ${backend.version}` },
    stopRequested: () => stop,
    onClaimLost: (run) => {
      console.error(`[${flags.worker}] ${run.id} was taken over by another worker (our heartbeat went stale); stopping without writing`);
      process.exit(EXIT_CLAIM_LOST);
    },
    say,
  });
  say(result.stopped ? 'stopped' : `done (${result.trained.length} run(s) trained here)`);
  return result.stopped ? EXIT.killed : EXIT.finished;
}
