// The report's tables from the runs' facts: the headline (Mix-LN's Table 1
// shape), per-block gradient norms and output variance, the depth profile that
// condenses them, and the list of runs.
import { mean, mixedTokenizerWarning, orderedGroups, orderedSizes, std, type LayerProfile, type RunFacts, type Size } from './facts.ts';
import { codeVersion, mixedCodeWarning } from './provenance.ts';
import { extent } from './reduce.ts';
import type { Cell, Stat, Table } from './tables.ts';

/** Rows = strategy, columns = model size, cells = final validation perplexity over seeds. */
export function headlineTable(facts: RunFacts[]): Table {
  const sizes = orderedSizes(facts);
  return {
    id: 'headline',
    title: 'Final validation perplexity (mean ± std over seeds; lower is better)',
    note: ['Diverged runs are counted, not averaged in; unfinished runs (pending, running, stopped, failed) likewise.', mixedTokenizerWarning(facts), mixedCodeWarning(facts)].filter(Boolean).join(' '),
    columns: ['strategy', ...sizes.map((s) => s.label)],
    rows: orderedGroups(facts).map((group) => [group, ...sizes.map((size) => perplexityStat(cell(facts, group, size)))]),
  };
}

function cell(facts: RunFacts[], group: string, size: Size): RunFacts[] {
  return facts.filter((f) => f.group === group && f.size.label === size.label);
}

export function perplexityStat(runs: RunFacts[]): Stat | null {
  return finalStat(runs, 'valPpl');
}

/**
 * Mean ± std of the runs' final validation loss or perplexity: finished runs with a
 * finite value only; diverged runs (or finished ones whose value is not finite) and
 * unfinished ones counted apart.
 */
export function finalStat(runs: RunFacts[], key: 'valPpl' | 'valLoss'): Stat | null {
  if (runs.length === 0) return null;
  const done = runs.filter((r) => r.status === 'finished' && r[key] !== undefined && Number.isFinite(r[key]));
  const diverged = runs.filter((r) => r.status === 'diverged' || (r.status === 'finished' && !done.includes(r))).length;
  const values = done.map((r) => r[key]!);
  return {
    mean: values.length ? mean(values) : null,
    std: std(values),
    n: values.length,
    diverged,
    unfinished: runs.length - values.length - diverged,
  };
}

type Pick = 'first' | 'last' | 'mean';

/** One run's per-block values at its first or last diagnostic step, or averaged over all of them. */
function profile(s: LayerProfile, pick: Pick): number[] | undefined {
  return s[pick];
}

/**
 * Per-block profile of a group: the mean over its runs. The first diagnostic step
 * uses every run (a run that diverged later still has it); the end of training,
 * finished runs only.
 */
export function groupProfile(runs: RunFacts[], metric: 'gradNorm' | 'outputVar', pick: Pick): number[] | undefined {
  const usable = pick === 'first' ? runs : runs.filter((r) => r.status === 'finished');
  const profiles = usable.map((r) => profile(r[metric], pick)).filter((p) => p !== undefined);
  if (profiles.length === 0) return undefined;
  return profiles[0]!.map((_, b) => mean(profiles.map((p) => p[b]!)));
}

function stepNote(runs: RunFacts[], metric: 'gradNorm' | 'outputVar', pick: Pick): string {
  const usable = pick === 'first' ? runs : runs.filter((r) => r.status === 'finished');
  const steps = [...new Set(usable.map((r) => (pick === 'first' ? r[metric].firstStep : r[metric].lastStep)).filter((s) => s !== undefined))];
  if (pick === 'mean') return 'averaged over every diagnostic step of training, finished runs';
  const which = pick === 'first' ? 'first diagnostic step, all runs' : 'last diagnostic step, finished runs';
  return `${which}${steps.length === 1 ? ` (step ${steps[0]})` : ''}`;
}

const LAYER_TABLES: { id: string; metric: 'gradNorm' | 'outputVar'; pick: Pick; title: string }[] = [
  { id: 'grad-norm-first', metric: 'gradNorm', pick: 'first', title: 'Gradient norm by block at the start of training' },
  { id: 'grad-norm-last', metric: 'gradNorm', pick: 'last', title: 'Gradient norm by block at the end of training' },
  { id: 'output-var-last', metric: 'outputVar', pick: 'last', title: 'Output variance by block at the end of training' },
  { id: 'output-var-mean', metric: 'outputVar', pick: 'mean', title: 'Output variance by block, mean over training' },
];

/** Rows = block, columns = strategy; one set per model size. */
export function layerTables(facts: RunFacts[]): Table[] {
  const sizes = orderedSizes(facts);
  return sizes.flatMap((size) => {
    const here = facts.filter((f) => f.size.label === size.label);
    const groups = orderedGroups(here);
    const suffix = sizes.length > 1 ? ` — ${size.label}` : '';
    return LAYER_TABLES.map((t) => {
      const profiles = groups.map((g) => groupProfile(here.filter((f) => f.group === g), t.metric, t.pick));
      const rows: Cell[][] = Array.from({ length: size.layers }, (_, b) => [b + 1, ...profiles.map((p) => p?.[b] ?? null)]);
      return {
        id: `${t.id}${sizes.length > 1 ? `-${slug(size.label)}` : ''}`,
        title: `${t.title}${suffix}`,
        note: `Mean over seeds; ${stepNote(here, t.metric, t.pick)}.`,
        columns: ['block', ...groups],
        rows,
      };
    });
  });
}

/**
 * The papers' depth claims in numbers per strategy: how the gradient norm of the
 * first block compares with the last (Post-LN: small early; Pre-LN: small deep),
 * how uneven gradient norms are over blocks (Mix-LN: flatter), and how the output
 * variance grows over depth (Pre-LN: grows; LNS: curbed).
 */
export function depthProfileTable(facts: RunFacts[]): Table {
  const rows: Cell[][] = [];
  for (const size of orderedSizes(facts)) {
    const here = facts.filter((f) => f.size.label === size.label);
    for (const group of orderedGroups(here)) {
      const runs = here.filter((f) => f.group === group);
      const [start, end] = (['first', 'last'] as const).map((pick) => groupProfile(runs, 'gradNorm', pick));
      const variance = groupProfile(runs, 'outputVar', 'last');
      rows.push([
        group, size.label,
        firstOverLast(start), firstOverLast(end), spread(start), spread(end),
        variance ? variance.at(-1)! : null, firstOverLast(variance, true),
      ]);
    }
  }
  return {
    id: 'depth-profile',
    title: 'Depth profile',
    note: 'Start: first diagnostic step (all runs); end: last diagnostic step (finished runs); means over seeds. Spread = max / min over blocks.',
    columns: [
      'strategy', 'size', 'grad norm block 1 / last, start', 'grad norm block 1 / last, end',
      'grad norm spread, start', 'grad norm spread, end', 'output var of last block, end', 'output var last / block 1, end',
    ],
    rows,
  };
}

/** Block 1 over the last block (or its inverse): below 1 when the first block is the smaller. */
function firstOverLast(p: number[] | undefined, inverse = false): number | null {
  if (!p) return null;
  return inverse ? p.at(-1)! / p[0]! : p[0]! / p.at(-1)!;
}

function spread(p: number[] | undefined): number | null {
  const range = extent(p ?? []);
  return range ? range[1] / range[0] : null;
}

/**
 * The same ratios run by run, with the smallest block-1 / last-block gradient
 * ratio over training: a seed whose early blocks stopped learning (Post-LN) shows
 * there even when the mean over seeds hides it.
 */
export function depthProfileRunsTable(facts: RunFacts[]): Table {
  const rows = orderedGroups(facts).flatMap((g) => facts.filter((f) => f.group === g).sort((a, b) => a.seed - b.seed)).map((f): Cell[] => {
    const g = f.gradNorm;
    return [
      f.id, f.group, f.size.label, f.seed,
      firstOverLast(g.first), g.lowestRatio?.value ?? null, g.lowestRatio?.step ?? null, firstOverLast(g.last),
      firstOverLast(f.outputVar.last, true),
    ];
  });
  return {
    id: 'depth-profile-runs',
    title: 'Depth profile per run',
    note: 'Gradient norm of block 1 over the last block at the first diagnostic step, at its smallest over training (and that step), and at the last; output variance growth at the last.',
    columns: ['run', 'strategy', 'size', 'seed', 'grad norm block 1 / last, start', 'smallest', 'at step', 'at the end', 'output var last / block 1, end'],
    rows,
  };
}

export function runsTable(facts: RunFacts[]): Table {
  return {
    id: 'runs',
    title: 'Runs',
    note: 'code: normlab version @ git commit (Provenance has the backend and host).',
    columns: ['run', 'strategy', 'size', 'seed', 'tokenizer', 'code', 'status', 'step', 'val loss', 'val ppl'],
    rows: facts.map((f) => [
      f.id, f.group, f.size.label, f.seed, f.tokenizer, codeVersion(f),
      f.status === 'diverged' ? `diverged at step ${f.divergedStep ?? f.step}` : f.status,
      // A diverged run's last evaluation predates its divergence: not its result.
      `${f.step}/${f.totalSteps}`, f.status === 'diverged' ? null : f.valLoss ?? null, f.status === 'diverged' ? null : f.valPpl ?? null,
    ]),
  };
}

export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}
