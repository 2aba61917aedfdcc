// Fault injection for the reliability suite. NORMLAB_FAULT="<kill|enospc|sqlitefull>:<point>:<n>"
// makes the n-th arrival at a named point either SIGKILL the process (a crash
// at the worst moment), fail like a full disk, or fail like SQLite on a full disk
// at that arrival and every later one (a full disk stays full). "lowdisk:checkpoint-space:<n>"
// makes the n-th free-space check before a checkpoint find the disk full.
// Unset, every point is a no-op.
const spec = process.env.NORMLAB_FAULT?.split(':');
const arrivals = new Map<string, number>();

export type FaultPoint = 'checkpoint-write' | 'checkpoint-rename' | 'metrics-flush' | 'optimizer-step' | 'store-write' | 'data-write';

/** Whether this arrival at `point` is the one the spec names (or a later one, for a lasting fault). */
function due(point: string, lasting = false): boolean {
  if (!spec || spec[1] !== point) return false;
  const n = (arrivals.get(point) ?? 0) + 1;
  arrivals.set(point, n);
  return lasting ? n >= Number(spec[2] ?? 1) : n === Number(spec[2] ?? 1);
}

export function faultPoint(point: FaultPoint): void {
  if (!due(point, spec?.[0] === 'sqlitefull')) return;
  if (spec![0] === 'sqlitefull') throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  if (spec![0] === 'kill') process.kill(process.pid, 'SIGKILL');
  if (spec![0] === 'enospc') throw Object.assign(new Error(`ENOSPC: no space left on device, write (injected at ${point})`), { code: 'ENOSPC' });
}

/** True when this free-space check should see a full disk. */
export function freeSpaceFault(): boolean {
  return spec?.[0] === 'lowdisk' && due('checkpoint-space');
}
