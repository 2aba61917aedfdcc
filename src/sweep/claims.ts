// Claims: which worker trains a run. A claim is a file created with O_EXCL in
// the run's folder, so it works on any shared file system (NFS v3+ creates
// exclusively), never through SQLite locking, which is unsafe over NFS.
//
// Generations make takeover atomic too: claims/claim-<g>.json is the g-th claim
// of the run; the current one is the highest g. Taking over a stale claim means
// creating claim-<g+1> exclusively, which exactly one worker can do. The owner
// keeps its claim fresh by touching it (mtime is the heartbeat); a claim is
// stale when its mtime is older than staleAfterMs, or, on the same host, when
// its process is gone (so a sweep restarted after kill -9 need not wait).
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

/** How long a claim's heartbeat may be silent before the claim is taken over (`--stale-after`'s default). */
export const DEFAULT_STALE_AFTER_MS = 300_000;

export interface ClaimOwner {
  worker: string;
  host: string;
  pid: number;
}

export interface Claim extends ClaimOwner {
  file: string;
  generation: number;
  /** Unique per claim: tells this claim from a later one by the same worker. */
  token: string;
  claimedAt: string;
}

export interface ClaimState {
  claim: Partial<Claim> & { file: string; generation: number };
  heartbeatAt: Date;
  stale: boolean;
}

export function currentOwner(worker: string): ClaimOwner {
  return { worker, host: hostname(), pid: process.pid };
}

const claimsDir = (runDir: string) => path.join(runDir, 'claims');

/** The run's current claim (the highest generation), or null if nobody holds it. */
export function readClaim(runDir: string, staleAfterMs: number, now = Date.now()): ClaimState | null {
  let names: string[];
  try {
    names = readdirSync(claimsDir(runDir));
  } catch {
    return null;
  }
  const generations = names.map((n) => /^claim-(\d+)\.json$/.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
  if (generations.length === 0) return null;
  const generation = generations.reduce((a, b) => Math.max(a, b));
  const file = path.join(claimsDir(runDir), `claim-${generation}.json`);
  let heartbeatAt: Date;
  try {
    heartbeatAt = statSync(file).mtime;
  } catch {
    return null; // released between listing and stat
  }
  const claim = { ...parseClaim(file), file, generation };
  const stale = now - heartbeatAt.getTime() > staleAfterMs || ownerIsGone(claim);
  return { claim, heartbeatAt, stale };
}

/** Claims the run if nobody holds it or its holder is stale; null if another worker has it. */
export function tryClaim(runDir: string, owner: ClaimOwner, staleAfterMs: number): Claim | null {
  mkdirSync(claimsDir(runDir), { recursive: true });
  const current = readClaim(runDir, staleAfterMs);
  if (current && !current.stale) return null;
  const generation = (current?.claim.generation ?? 0) + 1;
  const claim: Claim = {
    ...owner, generation, token: randomUUID(), claimedAt: new Date().toISOString(),
    file: path.join(claimsDir(runDir), `claim-${generation}.json`),
  };
  try {
    // 'wx' is O_CREAT | O_EXCL: of several workers creating this generation, one succeeds.
    writeFileSync(claim.file, JSON.stringify(claim), { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return null;
    throw e;
  }
  if (current) removeQuietly(current.claim.file);
  return claim;
}

/** Refreshes the heartbeat; false when the claim was taken over (the caller must stop). */
export function touchClaim(claim: Claim): boolean {
  if (!holds(claim)) return false;
  const t = new Date();
  utimesSync(claim.file, t, t);
  return true;
}

/** Gives the run up, unless someone has already taken it over. */
export function releaseClaim(claim: Claim): void {
  if (holds(claim)) removeQuietly(claim.file);
}

function holds(claim: Claim): boolean {
  return parseClaim(claim.file).token === claim.token;
}

// A claim being written reads as empty: treat its owner as unknown (judged by mtime only).
function parseClaim(file: string): Partial<Claim> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<Claim>;
  } catch {
    return {};
  }
}

function ownerIsGone(claim: Partial<Claim>): boolean {
  if (claim.host !== hostname() || claim.pid === undefined) return false;
  if (claim.pid === process.pid) return false;
  try {
    process.kill(claim.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  return isZombie(claim.pid);
}

// A killed worker whose parent died too stays a zombie until something reaps it
// (in containers, often nothing): signal 0 still reaches it, /proc tells.
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false; // no /proc (not Linux): signal 0 is all we have
  }
}

function removeQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone: released or taken over meanwhile
  }
}
