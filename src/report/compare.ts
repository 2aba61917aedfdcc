// Strategies against a baseline, paired by seed: runs of one seed see the same
// tokens in the same order (and start from the same seed), so the per-seed
// difference removes the seed-to-seed variance that unpaired means ± std keep.
// And, when a sweep varies the learning rate, each strategy at its own best lr.
import { finalStat } from './build.ts';
import { orderedSizes, settingLabel, strategyLabel, strategyRank, type RunFacts } from './facts.ts';
import { mixedCodeWarning } from './provenance.ts';
import { pairedSummary } from './stats.ts';
import type { Cell, Table } from './tables.ts';

export const DEFAULT_BASELINE = 'pre';
const LR = 'train.lr';

/** An lr as configs write it (0.002, 3e-4): toPrecision's 0.002000 would look measured. */
const lrText = (lr: number) => String(lr);

/** Runs of one strategy at one size and one setting of the varying keys: one side of a comparison. */
interface Arm {
  strategy: string;
  size: string;
  /** The strategy with its settings, as rows show it. */
  label: string;
  runs: RunFacts[];
}

/** A run's final validation loss where it counts: finished with a finite value (a diverged run has none). */
function finalLoss(f: RunFacts): number | undefined {
  return f.status === 'finished' && f.valLoss !== undefined && Number.isFinite(f.valLoss) ? f.valLoss : undefined;
}

/** Why a run is in no pair. */
function unpairedReason(f: RunFacts): string {
  if (f.status === 'diverged' || f.status === 'finished') return 'diverged'; // finished without a finite loss: diverged at the end
  return f.status === 'running' ? 'unfinished' : f.status;
}

/**
 * Runs split into arms: same size and same settings (less the `omit` keys) form
 * one comparison, keyed `size␀settings`; within it one arm per strategy, in the papers' order.
 */
function comparisons(facts: RunFacts[], omit: string[]): Map<string, Arm[]> {
  const out = new Map<string, Arm[]>();
  for (const size of orderedSizes(facts)) {
    const here = facts.filter((f) => f.size.label === size.label);
    const settings = [...new Set(here.map((f) => settingLabel(f.settings, omit)))].sort();
    for (const setting of settings) {
      const same = here.filter((f) => settingLabel(f.settings, omit) === setting);
      const strategies = [...new Set(same.map((f) => f.strategy))].sort((a, b) => strategyRank(a) - strategyRank(b) || (a < b ? -1 : 1));
      out.set(`${size.label}\0${setting}`, strategies.map((strategy) => ({
        strategy, size: size.label,
        label: `${strategyLabel(strategy)}${setting ? ` ${setting}` : ''}`,
        runs: same.filter((f) => f.strategy === strategy),
      })));
    }
  }
  return out;
}

/** Final loss per seed; a seed run twice (same config under two names) counts once, at its mean. */
function lossBySeed(runs: RunFacts[]): Map<number, number> {
  const all = new Map<number, number[]>();
  for (const f of runs) {
    const loss = finalLoss(f);
    if (loss !== undefined) (all.get(f.seed) ?? all.set(f.seed, []).get(f.seed)!).push(loss);
  }
  return new Map([...all].map(([seed, ls]) => [seed, ls.reduce((a, b) => a + b, 0) / ls.length]));
}

/** The runs of both arms that are in no pair, by arm and reason, e.g. `Post-LN: diverged (s1)`. */
function leftOut(arms: Arm[], paired: Set<number>): string | null {
  const parts: string[] = [];
  for (const arm of arms) {
    const byReason = new Map<string, number[]>();
    for (const f of arm.runs) {
      if (paired.has(f.seed) && finalLoss(f) !== undefined) continue;
      const why = finalLoss(f) === undefined ? unpairedReason(f) : 'no partner';
      (byReason.get(why) ?? byReason.set(why, []).get(why)!).push(f.seed);
    }
    for (const [why, seeds] of byReason) parts.push(`${arm.label}: ${why} (${seeds.sort((a, b) => a - b).map((s) => `s${s}`).join(', ')})`);
  }
  return parts.length ? parts.join('; ') : null;
}

const PAIRED_COLUMNS = ['strategy', 'size', 'baseline', 'pairs', 'mean Δ val loss', 'sd of Δ', '95% CI of Δ', 'wins', 'val ppl', 'baseline val ppl', 'not paired'];

/** One row: candidate − baseline over the seeds both finished. */
function pairedRow(candidate: Arm, baseline: Arm): Cell[] {
  const mine = lossBySeed(candidate.runs), theirs = lossBySeed(baseline.runs);
  const seeds = [...mine.keys()].filter((s) => theirs.has(s)).sort((a, b) => a - b);
  const p = pairedSummary(seeds.map((s) => mine.get(s)! - theirs.get(s)!));
  return [
    candidate.label, candidate.size, baseline.label, p.n, p.mean, p.sd,
    p.ci ? { low: p.ci[0], high: p.ci[1] } : p.n === 1 ? 'n < 2: no interval' : null,
    p.n ? `${p.wins}/${p.n}` : null,
    finalStat(candidate.runs, 'valPpl'), finalStat(baseline.runs, 'valPpl'),
    leftOut([candidate, baseline], new Set(seeds)),
  ];
}

const PAIRED_NOTE = 'Δ = strategy − baseline in final validation loss (nats), over the seeds both finished: one seed, one data order. '
  + 'Below 0: the strategy is better. 95% CI: Student\'s t with pairs − 1 degrees of freedom; wins: pairs where the strategy\'s loss is lower. '
  + 'ppl: mean ± sd over finished seeds with their n. Diverged and unfinished runs are never paired nor averaged: they are counted and named.';

function notes(...parts: (string | undefined)[]): string {
  return parts.filter(Boolean).join(' ');
}

/**
 * Every strategy against `baseline` at the same size and settings (learning rate
 * included), paired by seed; undefined when no strategy shares its settings with a baseline run.
 */
export function pairedTable(facts: RunFacts[], baseline: string): Table | undefined {
  const rows: Cell[][] = [];
  const used = new Set<RunFacts>();
  const alone = new Set<string>();
  for (const arms of comparisons(facts, []).values()) {
    const base = arms.find((a) => a.strategy === baseline);
    for (const arm of arms.filter((a) => a.strategy !== baseline)) {
      if (!base) { alone.add(arm.label); continue; }
      rows.push(pairedRow(arm, base));
      [...arm.runs, ...base.runs].forEach((f) => used.add(f));
    }
  }
  if (rows.length === 0) return undefined;
  return {
    id: 'paired',
    title: `Paired difference in final validation loss against ${strategyLabel(baseline)}, by seed`,
    note: notes(PAIRED_NOTE, alone.size ? `No ${strategyLabel(baseline)} run at the settings of: ${[...alone].join(', ')}.` : undefined, mixedCodeWarning([...used])),
    columns: PAIRED_COLUMNS,
    rows,
  };
}

/** Whether the runs of some size differ in learning rate. */
export function lrVaries(facts: RunFacts[]): boolean {
  return facts.some((f) => LR in f.settings);
}

/** One strategy at one size and setting, its runs by learning rate, and the lr chosen. */
interface LrArm extends Arm {
  byLr: Map<number, RunFacts[]>;
  best: number | undefined;
}

/**
 * The learning rate with the lowest final validation loss averaged over seeds.
 * Fewest diverged seeds first: a diverged run is worse than any loss, so an lr
 * where a seed diverged is never chosen over one where none did. Undefined when no run finished.
 */
export function bestLr(byLr: Map<number, RunFacts[]>): number | undefined {
  const ranked = [...byLr].map(([lr, runs]) => ({ lr, s: finalStat(runs, 'valLoss')! })).filter((c) => c.s.mean !== null);
  ranked.sort((a, b) => a.s.diverged - b.s.diverged || a.s.mean! - b.s.mean! || a.lr - b.lr);
  return ranked[0]?.lr;
}

function lrArms(facts: RunFacts[]): LrArm[][] {
  return [...comparisons(facts, [LR]).values()].map((arms) => arms.map((arm) => {
    const byLr = new Map<number, RunFacts[]>();
    for (const f of arm.runs) {
      const lr = f.settings[LR] as number;
      (byLr.get(lr) ?? byLr.set(lr, []).get(lr)!).push(f);
    }
    return { ...arm, byLr: new Map([...byLr].sort((a, b) => a[0] - b[0])), best: bestLr(byLr) };
  }));
}

/** Each strategy at its own best learning rate, with its loss at every lr tried; undefined when no sweep varies lr. */
export function bestLrTable(facts: RunFacts[]): Table | undefined {
  if (!lrVaries(facts)) return undefined;
  const arms = lrArms(facts).flat();
  const lrs = [...new Set(arms.flatMap((a) => [...a.byLr.keys()]))].sort((a, b) => a - b);
  return {
    id: 'best-lr',
    title: 'Each strategy at its own best learning rate',
    note: notes(
      'Best lr: the lowest final validation loss averaged over seeds; a diverged seed counts as worse than any loss, so an lr where one diverged is chosen only when every lr had as many. '
      + 'Loss and ppl: mean ± sd over finished seeds with their n, diverged runs counted apart.',
      mixedCodeWarning(facts),
    ),
    columns: ['strategy', 'size', 'best lr', 'val loss at best lr', 'val ppl at best lr', ...lrs.map((lr) => `val loss at lr ${lrText(lr)}`)],
    rows: arms.map((a) => {
      const best = a.best === undefined ? [] : a.byLr.get(a.best)!;
      return [
        a.label, a.size, a.best === undefined ? 'none finished' : lrText(a.best), finalStat(best, 'valLoss'), finalStat(best, 'valPpl'),
        ...lrs.map((lr) => finalStat(a.byLr.get(lr) ?? [], 'valLoss')),
      ];
    }),
  };
}

/** The paired comparison with every strategy and the baseline each at its own best lr; undefined when lr does not vary. */
export function pairedAtBestLrTable(facts: RunFacts[], baseline: string): Table | undefined {
  if (!lrVaries(facts)) return undefined;
  const rows: Cell[][] = [];
  const used = new Set<RunFacts>();
  for (const arms of lrArms(facts)) {
    const base = arms.find((a) => a.strategy === baseline);
    if (!base || base.best === undefined) continue;
    const at = (a: LrArm): Arm => ({ ...a, label: `${a.label} lr=${lrText(a.best!)}`, runs: a.byLr.get(a.best!)! });
    for (const arm of arms.filter((a) => a.strategy !== baseline && a.best !== undefined)) {
      rows.push(pairedRow(at(arm), at(base)));
      [...at(arm).runs, ...at(base).runs].forEach((f) => used.add(f));
    }
  }
  if (rows.length === 0) return undefined;
  return {
    id: 'paired-best-lr',
    title: `Paired difference against ${strategyLabel(baseline)}, each at its own best learning rate`,
    note: notes(PAIRED_NOTE, 'The lrs were chosen on these same runs: the interval does not allow for that choice (every strategy had the same choice of lrs).', mixedCodeWarning([...used])),
    columns: PAIRED_COLUMNS,
    rows,
  };
}
