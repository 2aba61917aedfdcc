// Where a planned run stands, from its own database and its claim: what the
// dry-run shows, what workers skip, what the closing summary counts.
import { existsSync } from 'node:fs';
import { RunStore, type RunRecord } from '../store/store.ts';
import { DEFAULT_STALE_AFTER_MS, readClaim, type ClaimState } from './claims.ts';
import type { PlannedRun } from './plan.ts';

/**
 * pending: never started · running: claimed by a live worker · interrupted: started,
 * its worker gone (resumes from its checkpoint) · killed: stopped by a signal (resumes) ·
 * finished / diverged / failed: ended.
 */
export type RunState = 'pending' | 'running' | 'interrupted' | 'killed' | 'finished' | 'diverged' | 'failed';

export interface PlannedRunStatus {
  state: RunState;
  record?: RunRecord;
  claim: ClaimState | null;
}

/** The run's registry row, read without writing to the file (it may belong to a worker elsewhere). */
export function readRecord(run: PlannedRun): RunRecord | undefined {
  if (!existsSync(run.config.output.db)) return undefined;
  const store = RunStore.open(run.config.output.db, { readonly: true });
  try {
    return store.getRun(run.id);
  } finally {
    store.close();
  }
}

/** A database that cannot be read counts as not started; training the run reports why. */
export function safeRecord(run: PlannedRun): RunRecord | undefined {
  try {
    return readRecord(run);
  } catch {
    return undefined;
  }
}

export function runStatus(run: PlannedRun, staleAfterMs: number): PlannedRunStatus {
  const claim = readClaim(run.dir, staleAfterMs);
  const record = safeRecord(run);
  const live = claim !== null && !claim.stale;
  const state: RunState = record === undefined ? (live ? 'running' : 'pending')
    : record.status === 'running' ? (live ? 'running' : 'interrupted')
      : record.status;
  return { state, ...(record && { record }), claim };
}

/**
 * The one status truth for a run its store calls running: every trainer (`normlab
 * train`, sweep workers, Slurm tasks) holds the run's claim while it trains, so
 * without a fresh claim of a live process the run was interrupted (killed, its
 * machine gone, or it could not record its end, e.g. on a full disk).
 */
export function isInterrupted(record: RunRecord, runDir: string, staleAfterMs = DEFAULT_STALE_AFTER_MS): boolean {
  if (record.status !== 'running') return false;
  const claim = readClaim(runDir, staleAfterMs);
  return claim === null || claim.stale;
}

/**
 * Whether a worker should leave the run alone: it finished or diverged (both
 * results), or it failed during this sweep invocation (started at `since`);
 * a failure from an earlier invocation is tried again.
 */
export function isDone(record: RunRecord | undefined, since: string): boolean {
  if (!record) return false;
  if (record.status === 'finished' || record.status === 'diverged') return true;
  return record.status === 'failed' && record.endedAt !== null && record.endedAt >= since;
}
