// normlab train <config.yaml> [--set key=value …] | --resume <run>
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { torchDevice, torchMemory } from '../backend/torch/index.ts';
import { loadRunConfig } from '../config/load.ts';
import type { RunConfig } from '../config/schema.ts';
import { inputsExist } from '../data/training.ts';
import { checkOutputs } from '../store/health.ts';
import { RunStore } from '../store/store.ts';
import { currentOwner, DEFAULT_STALE_AFTER_MS, readClaim, releaseClaim, touchClaim, tryClaim, type Claim } from '../sweep/claims.ts';
import { stepDirs } from '../train/checkpoint.ts';
import { checkFitsBackend } from '../train/memory.ts';
import { resolvePrecision } from '../train/precision.ts';
import { executeRun, readRunConfig, type RunData, type RunIdentity, runIdentity, trainingData } from '../train/run.ts';
import { startBackend, UsageError } from './common.ts';
import type { SetExitCode } from './main.ts';
import { describePlan } from './plan.ts';
import { progressFor } from './progress.ts';
import { rankEnv } from '../distributed/launch-env.ts';
import { collectiveTimeoutSeconds, dataParallelBackend } from '../distributed/process-group.ts';
import { joinDataParallel, onlyRankZero, type Replica, sink } from '../distributed/replica.ts';
import { runRanks } from '../distributed/spawn-ranks.ts';
import { runVersions } from '../train/provenance.ts';

/** Exit codes a script can tell apart. */
export const EXIT = { finished: 0, failed: 1, badInput: 2, diverged: 3, killed: 130 } as const;

export interface TrainFlags {
  set: string[];
  backend: string;
  resume?: string;
  restart?: boolean;
  quiet?: boolean;
  dryRun?: boolean;
  nprocPerNode?: string;
}

function resolveConfig(file: string | undefined, flags: TrainFlags): RunConfig {
  if (flags.resume) {
    if (file) throw new UsageError('give either a config file or --resume <run>, not both');
    if (flags.set.length) throw new UsageError('--set cannot change a resumed run: it continues with the config it was started with');
    const dir = flags.resume.includes('/') ? flags.resume : resolve('runs', flags.resume);
    return readRunConfig(dir);
  }
  if (!file) throw new UsageError('missing config file: normlab train <config.yaml> (or --resume <run>)');
  return loadRunConfig(file, flags.set);
}

/** normlab train: its flags are declared in train-command.ts, which imports this module only when the command runs. */
export async function trainCommand(file: string | undefined, flags: TrainFlags, setExitCode: SetExitCode): Promise<void> {
  const config = resolveConfig(file, flags);
  if (flags.dryRun) {
    const backend = await startBackend(flags.backend);
    for (const line of describePlan(config, backend.name)) console.log(line);
    checkFitsBackend(config, backend.name);
    return;
  }
  inputsExist(config.data); // missing data or tokenizer files first: on a fresh machine that is the news
  checkOutputs(config.output);
  const identity = runIdentity(config);
  // Under torchrun or srun this process is one rank; --nproc-per-node then means nothing more.
  const launch = rankEnv();
  const ranks = launch ? 1 : positiveInt(flags.nprocPerNode ?? '1', '--nproc-per-node');
  if (finishedBefore(config.output.db, identity.id) && !flags.restart) {
    console.log(`run ${identity.id} has already finished (${identity.dir}); --restart trains it again`);
    return;
  }
  if (ranks > 1) {
    setExitCode(await launchRanks(config, flags, ranks));
    return;
  }
  const backend = await startBackend(flags.backend, launch?.localRank);
  const replica = launch && joinDataParallel(launch, config.train.batch_size);
  try {
    // Everything that can refuse the run does so before a file is written.
    checkFitsBackend(config, backend.name, { ranks: launch?.worldSize });
    const precision = resolvePrecision(config, backend.name);
    // Rank 0 prepares the data (into a cache all ranks share) before the others read it.
    const data = replica ? await replica.firstOnRankZero(() => trainingData(config)) : await trainingData(config);
    // Rank 0 claims the run for all its ranks, as a sweep worker does.
    const claim = onlyRankZero<Claim | undefined>(replica, () => claimRun(identity), () => undefined);
    const heartbeat = claim && setInterval(() => touchClaim(claim), HEARTBEAT_MS);
    try {
      const store = onlyRankZero(replica, () => RunStore.open(config.output.db), sink<RunStore>);
      const quiet = flags.quiet || onlyRankZero(replica, () => false, () => true);
      try {
        const say = (text: string) => { if (!quiet) console.log(text); };
        const ranksNote = launch ? `  data parallel ${launch.worldSize} ranks (${launch.launcher})` : '';
        say(`run ${identity.id}  backend ${backend.name} (${backend.version}), ${precision}${ranksNote}  ${identity.dir}`);
        setExitCode(await trainWithSignals(config, store, data, backend, { ...flags, quiet }, say, replica));
      } finally {
        store.close();
      }
    } finally {
      clearInterval(heartbeat);
      if (claim) releaseClaim(claim);
    }
  } finally {
    replica?.destroy();
  }
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} expects a whole number ≥ 1, got ${text}`);
  return n;
}


/**
 * `--nproc-per-node N`: checks here what would refuse the run (backend, c10d,
 * GPUs, data), prepares the data once, then starts the N ranks and waits.
 */
async function launchRanks(config: RunConfig, flags: TrainFlags, ranks: number): Promise<number> {
  const backend = await startBackend(flags.backend);
  const processGroup = dataParallelBackend(ranks);
  if (config.train.batch_size % ranks !== 0) {
    throw new UsageError(`train.batch_size ${config.train.batch_size} does not divide among ${ranks} ranks: each rank takes an equal share of every batch; use a multiple of ${ranks}`);
  }
  checkFitsBackend(config, backend.name, { ranks, localRanks: ranks });
  await trainingData(config);
  const timeout = collectiveTimeoutSeconds();
  if (!flags.quiet) console.log(`data parallel: ${ranks} ranks on this machine over c10d ${processGroup} (collective timeout ${timeout} s)`);
  return runRanks(ranks, process.argv[1]!, process.argv.slice(2), timeout + 30, (text) => console.error(`normlab: ${text}`));
}

const STALE_AFTER_MS = DEFAULT_STALE_AFTER_MS;
const HEARTBEAT_MS = 30_000;

/** Raised when another live process trains the same run. */
class RunBusyError extends Error {
  readonly exitCode = EXIT.failed;
}

/**
 * Claims the run as sweep workers do (claims/claim-<g>.json, O_EXCL), so two
 * `normlab train` of one config cannot train it at once; the second one stops here.
 */
function claimRun(identity: RunIdentity): Claim {
  const claim = tryClaim(identity.dir, currentOwner('train'), STALE_AFTER_MS);
  if (claim) return claim;
  const held = readClaim(identity.dir, STALE_AFTER_MS);
  const who = held?.claim.pid ? `process ${held.claim.pid} on ${held.claim.host}` : 'another process';
  const age = held ? ` (heartbeat ${Math.round((Date.now() - held.heartbeatAt.getTime()) / 1000)} s ago)` : '';
  throw new RunBusyError(`run ${identity.id} is being trained by ${who}${age}; nothing was done. Wait for it to end, then rerun to resume or see it finished; a claim is taken over once its process is gone (${held?.claim.file ?? join(identity.dir, 'claims')})`);
}

function finishedBefore(db: string, runId: string): boolean {
  // An empty file is an empty database (SQLite creates its tables on the first write).
  if (!existsSync(db) || statSync(db).size === 0) return false;
  const store = RunStore.open(db, { readonly: true });
  try {
    return store.getRun(runId)?.status === 'finished';
  } finally {
    store.close();
  }
}

async function trainWithSignals(
  config: RunConfig, store: RunStore, data: RunData, backend: { name: string; version: string }, flags: TrainFlags, say: (text: string) => void,
  replica?: Replica,
): Promise<number> {
  let stopSignal: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    stopSignal = signal;
    say(`\n${signal}: finishing this step, then checkpointing`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = progressFor({ quiet: flags.quiet, tty: Boolean(process.stdout.isTTY) });
  const stepTimes: number[] = [];
  let last = performance.now();
  let peakRss = process.memoryUsage().rss;
  try {
    progress.start(config.train.steps, 0);
    const { identity, outcome, parameters } = await executeRun({
      config, store, data, backend: backend.name, restart: flags.restart, replica,
      versions: runVersions(backend, torchDevice()),
      hooks: {
        stopRequested: () => stopSignal !== undefined,
        onResume: (step, from) => say(`resuming from step ${step} (${from})`),
        warn: (message) => console.error(`normlab: warning: ${message}`),
        onStep: (report) => {
          const now = performance.now();
          stepTimes.push(now - last);
          last = now;
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
          progress.step(report);
        },
      },
    });
    progress.stop();
    const sorted = [...stepTimes].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    // The run's tensors are freed by now: the torch backend's allocator peak says something (it counts CPU memory only); others have none.
    const tensorPeak = torchDevice() === 'cpu' ? torchMemory()?.peakAllocatedBytes : undefined;
    const tensors = tensorPeak === undefined ? '' : `, native tensor peak ${(tensorPeak / 2 ** 20).toFixed(0)} MiB`;
    say(`${outcome.status} at step ${outcome.step}: ${parameters.toLocaleString('en')} parameters, median step ${median.toFixed(0)} ms, peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB${tensors}`);
    switch (outcome.status) {
      case 'finished':
        say(`validation loss ${outcome.validation.loss.toFixed(4)}, perplexity ${outcome.validation.perplexity.toFixed(2)}; metrics in ${config.output.db} (run ${identity.id})`);
        return EXIT.finished;
      case 'diverged':
        const kept = stepDirs(join(identity.dir, 'checkpoints'))[0];
        console.error(`normlab: run ${identity.id} diverged: ${outcome.reason}; ${kept ? `its last good checkpoint is kept (${kept.dir})` : 'it had written no checkpoint yet'}`);
        return EXIT.diverged;
      case 'killed':
        say(`stopped by ${stopSignal}; continue with: normlab train --resume ${identity.dir}`);
        return EXIT.killed;
    }
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
