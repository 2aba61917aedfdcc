// Fault injection for the reliability suite. NORMLAB_FAULT="<kill|enospc>:<point>:<n>"
// makes the n-th arrival at a named point either SIGKILL the process (a crash
// at the worst moment) or fail like a full disk. "lowdisk:checkpoint-space:<n>"
// makes the n-th free-space check before a checkpoint find the disk full.
// Unset, every point is a no-op.
const spec = process.env.NORMLAB_FAULT?.split(':');
const arrivals = new Map<string, number>();

export type FaultPoint = 'checkpoint-write' | 'checkpoint-rename' | 'metrics-flush' | 'optimizer-step';

/** Whether this arrival at `point` is the one the spec names. */
function due(point: string): boolean {
  if (!spec || spec[1] !== point) return false;
  const n = (arrivals.get(point) ?? 0) + 1;
  arrivals.set(point, n);
  return n === Number(spec[2] ?? 1);
}

export function faultPoint(point: FaultPoint): void {
  if (!due(point)) return;
  if (spec![0] === 'kill') process.kill(process.pid, 'SIGKILL');
  if (spec![0] === 'enospc') throw Object.assign(new Error(`ENOSPC: no space left on device, write (injected at ${point})`), { code: 'ENOSPC' });
}

/** True when this free-space check should see a full disk. */
export function freeSpaceFault(): boolean {
  return spec?.[0] === 'lowdisk' && due('checkpoint-space');
}
