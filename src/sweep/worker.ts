// A sweep worker: claims the next open run of the plan, trains it through
// executeRun into the run's own database, records how it ended, and goes on
// until every run has ended. Several workers, on one machine or several, share
// nothing but the run folders.
import { setTimeout as sleep } from 'node:timers/promises';
import { RunStore } from '../store/store.ts';
import type { StepReport } from '../train/trainer.ts';
import { executeRun } from '../train/run.ts';
import { type Replica, sink } from '../distributed/replica.ts';
import { releaseClaim, touchClaim, tryClaim, type Claim, type ClaimOwner } from './claims.ts';
import { formatOverrides, type Plan, type PlannedRun } from './plan.ts';
import { isDone, safeRecord } from './state.ts';

export interface WorkerOptions {
  plan: Plan;
  owner: ClaimOwner;
  /** A claim whose heartbeat is older than this is taken over. */
  staleAfterMs: number;
  /** When this sweep invocation started: runs that failed since are not retried. */
  since: string;
  backend: string;
  versions: Record<string, string>;
  /** Polled between steps and between runs: true checkpoints the current run and stops. */
  stopRequested(): boolean;
  /** Called when another worker took this run over (our heartbeat went stale): stop without writing. */
  onClaimLost(run: PlannedRun): void;
  say(text: string): void;
  /** How long to wait when every open run is held by another live worker. */
  pollMs?: number;
  /** A Slurm array task run as several ranks (--gpus-per-task N): this rank. */
  replica?: Replica;
}

export interface WorkerResult {
  trained: { id: string; status: string }[];
  stopped: boolean;
}

export async function runWorker(o: WorkerOptions): Promise<WorkerResult> {
  const trained: WorkerResult['trained'] = [];
  // Runs this worker need not look at again: found ended once claimed (whatever a read-only look
  // says), or failed here, maybe without a database to record it in.
  const settled = new Set<string>();
  for (;;) {
    if (o.stopRequested()) return { trained, stopped: true };
    const open = o.plan.runs.filter((r) => !settled.has(r.id) && !isDone(safeRecord(r), o.since));
    if (open.length === 0) return { trained, stopped: false };
    const next = claimFirst(open, o);
    if (next) {
      const status = await trainClaimed(next.run, next.claim, o);
      if (status) trained.push({ id: next.run.id, status });
      if (status === null || status === 'failed') settled.add(next.run.id);
    } else {
      // Every open run is held by a live worker: wait until one ends or its heartbeat goes stale.
      await sleep(o.pollMs ?? 2000);
    }
  }
}

/**
 * One Slurm array task's work: train exactly `run`. While a live worker holds its claim
 * (e.g. the task's previous instance on a node that is gone, until its heartbeat goes
 * stale), wait; returns how the run ended, or null when it had ended already.
 */
export async function trainOneRun(run: PlannedRun, o: WorkerOptions): Promise<string | null> {
  for (let waited = false; ; waited = true) {
    if (o.stopRequested()) return 'killed';
    if (isDone(safeRecord(run), o.since)) return null;
    const claim = tryClaim(run.dir, o.owner, o.staleAfterMs);
    if (claim) return trainClaimed(run, claim, o);
    if (!waited) o.say(`${run.id} is held by another worker; waiting until it ends or its heartbeat goes stale`);
    await sleep(o.pollMs ?? 2000);
  }
}

/**
 * A rank other than 0 of a data-parallel array task: trains `run` beside rank 0,
 * which claims it and writes everything; null when it had ended already.
 */
export async function followRun(run: PlannedRun, o: WorkerOptions): Promise<string | null> {
  if (isDone(safeRecord(run), o.since)) return null;
  const { outcome } = await executeRun({
    config: run.config, store: sink<RunStore>(), backend: o.backend, versions: o.versions, sweep: o.plan.sweep,
    replica: o.replica, hooks: { stopRequested: o.stopRequested },
  });
  return outcome.status;
}

function claimFirst(open: PlannedRun[], o: WorkerOptions): { run: PlannedRun; claim: Claim } | null {
  for (const run of open) {
    const claim = tryClaim(run.dir, o.owner, o.staleAfterMs);
    if (claim) return { run, claim };
  }
  return null;
}

/** Trains a claimed run; returns how it ended, or null if it had ended before we got the claim. */
async function trainClaimed(run: PlannedRun, claim: Claim, o: WorkerOptions): Promise<string | null> {
  const heartbeat = setInterval(() => {
    if (!touchClaim(claim)) o.onClaimLost(run);
  }, Math.min(30_000, o.staleAfterMs / 4));
  const started = Date.now();
  let store: RunStore | undefined;
  try {
    // The claim makes this worker the file's only writer, so it may open it for writing:
    // that also recovers a file its previous owner was killed while writing.
    store = RunStore.open(run.config.output.db);
    // Another worker may have ended it between our look and our claim.
    if (isDone(store.getRun(run.id), o.since)) return null;
    o.say(`${run.id} (#${run.index}/${o.plan.runs.length}: ${formatOverrides(run.overrides)}) started`);
    const { outcome } = await executeRun({
      config: run.config, store, backend: o.backend, versions: o.versions, sweep: o.plan.sweep, replica: o.replica,
      hooks: {
        stopRequested: o.stopRequested,
        onResume: (step) => o.say(`${run.id} resumes from step ${step}`),
        warn: (message) => o.say(`${run.id} warning: ${message}`),
        onStep: (r) => reportProgress(run, r, o.say),
      },
    });
    const took = formatDuration(Date.now() - started);
    const detail = outcome.status === 'finished' ? `val ppl ${outcome.validation.perplexity.toFixed(2)}`
      : outcome.status === 'diverged' ? outcome.reason : 'checkpointed, resumable';
    o.say(`${run.id} ${outcome.status} at step ${outcome.step} (${detail}) in ${took}`);
    return outcome.status;
  } catch (e) {
    o.say(`${run.id} failed: ${(e as Error).message}`);
    if (store) recordFailure(store, run, o, e as Error);
    return 'failed';
  } finally {
    clearInterval(heartbeat);
    store?.seal();
    store?.close();
    releaseClaim(claim);
  }
}

/** executeRun marks failures it sees; one before the run's row exists (e.g. its data) is recorded here. */
function recordFailure(store: RunStore, run: PlannedRun, o: WorkerOptions, e: Error): void {
  if (!store.getRun(run.id)) {
    store.createRun({
      id: run.id, name: run.config.name, sweep: o.plan.sweep, config: run.config, configHash: run.hash,
      seed: run.config.train.seed, backend: o.backend, totalSteps: run.config.train.steps,
      versions: o.versions, runDir: run.dir,
    });
  }
  if (store.getRun(run.id)!.status === 'running') store.setStatus(run.id, 'failed', { error: e.message });
}

function reportProgress(run: PlannedRun, r: StepReport, say: (text: string) => void): void {
  const every = Math.max(1, Math.round(run.config.train.steps / 10));
  if (r.step % every !== 0 || r.step === run.config.train.steps) return;
  say(`${run.id} step ${r.step}/${run.config.train.steps} loss ${r.loss.toFixed(3)} ${r.tokensPerSecond.toFixed(0)} tok/s`);
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}
