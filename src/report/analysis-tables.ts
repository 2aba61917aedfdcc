// The layer analyses as tables: one row per run with the numbers that answer
// the papers' questions (are deep blocks nearly identical to their neighbours,
// cheap to drop; does the variance grow with depth), and per-block tables —
// rows block, columns strategy, means over the analysed runs.
import { setLabel, UNKNOWN_SET } from '../analyze/sample-set.ts';
import { hasAnalyses, type RunAnalyses } from './analyses.ts';
import { slug } from './build.ts';
import { mean, orderedGroups, orderedSizes, type RunFacts } from './facts.ts';
import type { Cell, Table } from './tables.ts';

/** d(h_{ℓ−1}, h_ℓ) for blocks ℓ = 1…L: the n = 1 row of the angular matrix. */
export const adjacentAngular = (a: RunAnalyses): number[] | undefined => a.angular?.matrix[0];

interface PerBlock {
  id: string;
  title: string;
  /** What the value is, and its unit. */
  what: string;
  /** The first row's index: 0 for hidden states h_0…h_L, 1 for blocks. */
  from: 0 | 1;
  pick: (a: RunAnalyses) => number[] | undefined;
  step: (a: RunAnalyses) => number | undefined;
}

export const PER_BLOCK: PerBlock[] = [
  {
    id: 'angular-adjacent', title: 'Angular distance between each block\'s input and output, d(h_ℓ−1, h_ℓ)',
    what: 'Arccos(cos)/π of the last position\'s hidden states: 0 = same direction, 0.5 = orthogonal',
    from: 1, pick: adjacentAngular, step: (a) => a.angular?.step,
  },
  {
    id: 'layer-drop', title: 'Validation-loss increase when each block is removed (replaced by the identity)',
    what: 'Δloss in nats per token on the analysed validation sequences; below 0: the model does better without the block',
    from: 1, pick: (a) => a.layerDrop?.values, step: (a) => a.layerDrop?.step,
  },
  {
    id: 'hidden-variance', title: 'Variance of the hidden states h_0 (embedding output) … h_L',
    what: 'Population variance over tokens × channels of h_ℓ, the residual stream after ℓ blocks',
    from: 0, pick: (a) => a.variance?.values, step: (a) => a.variance?.step,
  },
  {
    id: 'max-activation', title: 'Largest absolute activation of each block\'s output, max |h_ℓ|',
    what: 'Over every token and channel of the analysed sequences ("massive activations", Peri-LN)',
    from: 1, pick: (a) => a.maxAbs?.values, step: (a) => a.maxAbs?.step,
  },
  {
    id: 'cosine', title: 'Cosine similarity between each block\'s input and output, cos(h_ℓ−1, h_ℓ)',
    what: 'Mean over positions; 1 = the block leaves the direction unchanged',
    from: 1, pick: (a) => a.cosine?.values, step: (a) => a.cosine?.step,
  },
];

/** Element-wise mean of the runs' profiles (NaN where none has a value); undefined when no run has one. */
export function meanProfile(runs: RunFacts[], pick: (a: RunAnalyses) => number[] | undefined): number[] | undefined {
  const profiles = runs.map((r) => pick(r.analyses)).filter((p) => p !== undefined);
  if (profiles.length === 0) return undefined;
  return profiles[0]!.map((_, b) => mean(profiles.map((p) => p[b]!)));
}

/** "step 200", or the range when the runs were analysed at different steps. */
export function stepsText(steps: (number | undefined)[]): string {
  const known = [...new Set(steps.filter((s) => s !== undefined))].sort((a, b) => a - b);
  if (known.length === 0) return 'no step';
  return known.length === 1 ? `step ${known[0]}` : `steps ${known[0]}–${known.at(-1)}`;
}

/** "sample set <key>", or every set when the runs were analysed on different ones (never averaged as one). */
export function setsText(runs: RunFacts[]): string {
  const sets = [...new Set(runs.map((r) => r.analyses.sampleSet).filter((s) => s !== undefined))].sort();
  if (sets.length === 0) return 'no sample set';
  return sets.length === 1 ? (sets[0] === UNKNOWN_SET ? setLabel(sets[0]) : `sample set ${setLabel(sets[0]!)}`) : `sample sets ${sets.map(setLabel).join('; ')}`;
}

/** Rows = block (or hidden state), columns = strategy; one table per analysis and model size that has data. */
export function analysisLayerTables(facts: RunFacts[]): Table[] {
  const sizes = orderedSizes(facts);
  return sizes.flatMap((size) => {
    const here = facts.filter((f) => f.size.label === size.label);
    return PER_BLOCK.flatMap((t): Table[] => {
      const analysed = here.filter((f) => t.pick(f.analyses) !== undefined);
      if (analysed.length === 0) return [];
      const groups = orderedGroups(analysed);
      const profiles = groups.map((g) => meanProfile(analysed.filter((f) => f.group === g), t.pick));
      const rows: Cell[][] = Array.from({ length: size.layers + 1 - t.from }, (_, k) => [k + t.from, ...profiles.map((p) => p?.[k] ?? null)]);
      const counts = groups.map((g) => `${g} ${analysed.filter((f) => f.group === g).length}`).join(', ');
      return [{
        id: `${t.id}${sizes.length > 1 ? `-${slug(size.label)}` : ''}`,
        title: `${t.title}${sizes.length > 1 ? ` — ${size.label}` : ''}`,
        note: `${t.what}. Mean over the analysed runs (${counts}); checkpoint ${stepsText(analysed.map((f) => t.step(f.analyses)))}; ${setsText(analysed)}.`,
        columns: [t.from === 0 ? 'hidden state' : 'block', ...groups],
        rows,
      }];
    });
  });
}

const half = (p: number[] | undefined, second: boolean): number | null => {
  if (!p) return null;
  const k = Math.floor(p.length / 2);
  return mean(second ? p.slice(k) : p.slice(0, k));
};

/**
 * One row per analysed run: adjacent angular distance and layer-drop Δloss in
 * the first and the second half of the blocks (the papers: deep Pre-LN blocks
 * barely change the representation and can be dropped), the block cheapest to
 * drop, variance growth over depth and the largest activation.
 */
export function analysisRunsTable(facts: RunFacts[]): Table {
  const analysed = orderedGroups(facts).flatMap((g) => facts.filter((f) => f.group === g && hasAnalyses(f.analyses)).sort((a, b) => a.seed - b.seed));
  const rows = analysed.map((f): Cell[] => {
    const a = f.analyses;
    const steps = [...new Set([a.angular?.step, a.layerDrop?.step, a.variance?.step, a.maxAbs?.step, a.cosine?.step].filter((s) => s !== undefined))];
    const drop = a.layerDrop?.values;
    const cheapest = drop ? drop.reduce((best, v, i) => (v < drop[best]! ? i : best), 0) : undefined;
    const variance = a.variance?.values;
    const maxAbs = a.maxAbs?.values;
    const largest = maxAbs ? maxAbs.reduce((best, v, i) => (v > maxAbs[best]! ? i : best), 0) : undefined;
    return [
      f.id, f.group, f.size.label, f.seed,
      steps.length === 1 ? steps[0]! : steps.length ? steps.sort((x, y) => x - y).join('/') : null,
      a.layerDrop?.loss ?? null,
      half(adjacentAngular(a), false), half(adjacentAngular(a), true),
      half(drop, false), half(drop, true),
      cheapest === undefined ? null : cheapest + 1, cheapest === undefined ? null : drop![cheapest]!,
      variance ? variance.at(-1)! / variance[1]! : null,
      largest === undefined ? null : maxAbs![largest]!, largest === undefined ? null : largest + 1,
      setLabel(a.sampleSet ?? UNKNOWN_SET),
    ];
  });
  return {
    id: 'analysis-runs',
    title: 'Layer analyses per run',
    note: 'At the checkpoint step analysed, on the sample set named (one per run: `--analysis-set`, else the largest set present at every analysed step); first half = blocks 1…⌊L/2⌋, second half = the rest. Angular: d(h_ℓ−1, h_ℓ) = arccos(cos)/π; drop Δloss: validation-loss increase when the block is replaced by the identity (nats per token); loss: the whole model\'s on the same sequences.',
    columns: [
      'run', 'strategy', 'size', 'seed', 'step', 'loss',
      'angular to previous, first half', 'angular to previous, second half',
      'drop Δloss, first half', 'drop Δloss, second half', 'cheapest block to drop', 'its Δloss',
      'variance h_L / h_1', 'max |h|', 'at block', 'sample set',
    ],
    rows,
  };
}

/** Every analysis table, or none when no run has analyses. */
export function analysisTables(facts: RunFacts[]): Table[] {
  return facts.some((f) => hasAnalyses(f.analyses)) ? [analysisRunsTable(facts), ...analysisLayerTables(facts)] : [];
}
