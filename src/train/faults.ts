// Fault injection for the reliability suite. NORMLAB_FAULT="<kill|enospc>:<point>:<n>"
// makes the n-th arrival at a named point either SIGKILL the process (a crash
// at the worst moment) or fail like a full disk. Unset, every point is a no-op.
const spec = process.env.NORMLAB_FAULT?.split(':');
const arrivals = new Map<string, number>();

export type FaultPoint = 'checkpoint-write' | 'checkpoint-rename' | 'metrics-flush' | 'optimizer-step';

export function faultPoint(point: FaultPoint): void {
  if (!spec || spec[1] !== point) return;
  const n = (arrivals.get(point) ?? 0) + 1;
  arrivals.set(point, n);
  if (n !== Number(spec[2] ?? 1)) return;
  if (spec[0] === 'kill') process.kill(process.pid, 'SIGKILL');
  if (spec[0] === 'enospc') throw Object.assign(new Error(`ENOSPC: no space left on device, write (injected at ${point})`), { code: 'ENOSPC' });
}
