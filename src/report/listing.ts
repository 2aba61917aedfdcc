// The rows of `normlab runs`: what tells runs apart (strategy, size, seed, and
// precision and lr where they vary) and where each stands, read from its
// registry row and the last few points of three series (never a whole series).
import { PRESETS } from '../config/presets.ts';
import type { RunConfig } from '../config/schema.ts';
import { strategyLabel } from './facts.ts';
import { formatNumber } from './tables.ts';
import type { GatheredRun } from './gather.ts';
import { backendLabel } from './facts.ts';

/** Columns shown only when the listed runs differ in them, with how to read each from a config. */
const VARYING: [string, (c: RunConfig) => string][] = [
  ['precision', (c) => String((c.train as { precision?: unknown }).precision ?? '')],
  ['lr', (c) => String(c.train.lr)],
];

/**
 * The listing as rows of cells, the header first. `interrupted(run)`: its store says
 * running but no live process holds it (sweep/state.ts isInterrupted).
 */
export function listing(runs: GatheredRun[], interrupted: (g: GatheredRun) => boolean = () => false, now = Date.now()): string[][] {
  const varying = VARYING.filter(([, read]) => new Set(runs.map((g) => read(g.record.config))).size > 1);
  const header = ['run', 'sweep', 'strategy', 'size', 'seed', ...varying.map(([name]) => name), 'status', 'step', 'train loss', 'val ppl', 'tok/s', 'backend', 'heartbeat'];
  return [header, ...runs.map((g) => listingRow(g, varying.map(([, read]) => read(g.record.config)), interrupted(g), now))];
}

/** "1b" for a preset's shape, else "d512×8L". */
export function sizeLabel(config: RunConfig): string {
  const m = config.model;
  const preset = config.model_preset !== undefined ? PRESETS[config.model_preset] : undefined;
  const matches = preset !== undefined && (['d_model', 'n_layers', 'ffn_dim'] as const).every((k) => preset[k] === m[k]);
  return matches ? config.model_preset! : `d${m.d_model}×${m.n_layers}L`;
}

function listingRow(g: GatheredRun, varying: string[], interrupted: boolean, now: number): string[] {
  const { record: r, store } = g;
  const loss = store.lastScalar(r.id, 'train/loss');
  const ppl = store.lastScalar(r.id, 'val/ppl');
  // The median of the last steps: single steps swing with evaluation and checkpoints.
  const speeds = store.scalarTail(r.id, 'train/tokens_per_s', 20).map((p) => p.value).sort((a, b) => a - b);
  const speed = speeds[Math.floor(speeds.length / 2)];
  const age = r.heartbeatAt ? now - Date.parse(r.heartbeatAt) : null;
  const status = r.status === 'diverged' ? `diverged@${r.divergedStep ?? r.step}` : interrupted ? 'interrupted' : r.status;
  return [
    r.id, r.sweep ?? '', strategyLabel(r.config.model.norm), sizeLabel(r.config), String(r.seed), ...varying,
    status, `${r.step}/${r.totalSteps}`,
    loss === undefined ? '' : formatNumber(loss), ppl === undefined ? '' : formatNumber(ppl),
    speed === undefined ? '' : speed.toFixed(0), backendLabel(r),
    age === null ? '' : `${formatAge(age)} ago`,
  ];
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return s < 172_800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86_400)}d`;
}
