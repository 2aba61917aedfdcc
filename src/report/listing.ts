// The rows of `normlab runs`: where each run stands, from its registry row and its last metrics.
import { formatNumber } from './tables.ts';
import type { GatheredRun } from './gather.ts';

export const LISTING_COLUMNS = ['run', 'sweep', 'status', 'step', 'train loss', 'val ppl', 'tok/s', 'backend', 'heartbeat'];

/** `interrupted`: its store says running but no live process holds it (sweep/state.ts isInterrupted). */
export function listingRow(g: GatheredRun, interrupted: boolean, now = Date.now()): string[] {
  const { record: r, store } = g;
  const loss = store.scalarSeries(r.id, 'train/loss').at(-1)?.value;
  const ppl = store.scalarSeries(r.id, 'val/ppl').at(-1)?.value;
  // The median of the last steps: single steps swing with evaluation and checkpoints.
  const speeds = store.scalarSeries(r.id, 'train/tokens_per_s').slice(-20).map((p) => p.value).sort((a, b) => a - b);
  const speed = speeds[Math.floor(speeds.length / 2)];
  const age = r.heartbeatAt ? now - Date.parse(r.heartbeatAt) : null;
  const status = r.status === 'diverged' ? `diverged@${r.divergedStep ?? r.step}` : interrupted ? 'interrupted' : r.status;
  return [
    r.id, r.sweep ?? '', status, `${r.step}/${r.totalSteps}`,
    loss === undefined ? '' : formatNumber(loss), ppl === undefined ? '' : formatNumber(ppl),
    speed === undefined ? '' : speed.toFixed(0), r.backend,
    age === null ? '' : `${formatAge(age)} ago`,
  ];
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return s < 172_800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86_400)}d`;
}
