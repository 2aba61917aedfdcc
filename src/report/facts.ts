// What the report says about each run, read from the store: its strategy, its
// model size, the row it belongs to, its final validation numbers and its
// per-block diagnostics. Nothing here imports the model.
import type { RunConfig } from '../config/schema.ts';
import { PRESETS } from '../config/presets.ts';
import type { RunStatus } from '../store/store.ts';
import { AnalysisReader, readRunAnalyses, type RunAnalyses } from './analyses.ts';
import type { GatheredRun } from './gather.ts';

/** The papers' names, in the order Mix-LN's tables use, then the rest. */
export const STRATEGY_LABELS: Record<string, string> = {
  post: 'Post-LN', deepnorm: 'DeepNorm', pre: 'Pre-LN', mix: 'Mix-LN', lns: 'LNS', peri: 'Peri-LN',
  sandwich: 'Sandwich-LN', hybridnorm: 'HybridNorm', hybridnorm_star: 'HybridNorm*', dyt: 'DyT', none: 'no norm',
};

export const STRATEGY_COLOURS: Record<string, string> = {
  post: '#d62728', deepnorm: '#8c564b', pre: '#1f77b4', mix: '#2ca02c', lns: '#9467bd', peri: '#ff7f0e',
  sandwich: '#e377c2', hybridnorm: '#7f7f7f', hybridnorm_star: '#17becf', dyt: '#bcbd22', none: '#000000',
};

export interface Size {
  label: string;
  /** Parameters in the blocks (attention 4d² + SwiGLU 3·d·ffn per block): orders sizes; no model import needed. */
  blockParams: number;
  layers: number;
}

/**
 * What the tables say about one per-block metric of one run, aggregated in SQL
 * (a 100,000-step run is not read row by row): the profile over blocks at the
 * first and last diagnostic step and averaged over all of them, and where block
 * 1 over the last block was smallest. Profiles are by block - 1, NaN where missing.
 */
export interface LayerProfile {
  /** Diagnostic steps recorded. */
  steps: number;
  firstStep?: number;
  lastStep?: number;
  first?: number[];
  last?: number[];
  mean?: number[];
  lowestRatio?: { step: number; value: number };
}

export interface RunFacts {
  id: string;
  sweep: string | null;
  status: RunStatus;
  seed: number;
  strategy: string;
  size: Size;
  /** Row label: the strategy, plus any setting that varies between runs of one size (e.g. mix_alpha). */
  group: string;
  /** Those varying settings by dotted key (e.g. `train.lr`): runs of one size, seed and settings differ only in strategy. */
  settings: Record<string, unknown>;
  step: number;
  totalSteps: number;
  divergedStep: number | null;
  backend: string;
  /** The tokenizer (name and sha256 prefix of a file): perplexities of different tokenizers do not compare. */
  tokenizer: string;
  valLoss?: number;
  valPpl?: number;
  gradNorm: LayerProfile;
  outputVar: LayerProfile;
  /** Layer analyses of a checkpoint (normlab analyze), each at one step; empty when the run has none. */
  analyses: RunAnalyses;
  source: GatheredRun;
}

export interface FactsOptions {
  /** Read the analyses at this step (default: each run's latest analysed step, per analysis). */
  analysisStep?: number;
  /** Read the analyses of this sample set (default: chooseSampleSet's rule, per run). */
  analysisSet?: string;
}

/** Keys that never split a row: labels, paths, cadences, the seed, the strategy and the size itself. */
const NOT_GROUPING = new Set([
  'name', 'model_preset', 'train.seed', 'train.log_every', 'train.diag_every', 'train.analyze_every', 'train.checkpoint_every',
  'train.keep_checkpoints', 'model.norm', 'model.vocab_size', 'model.d_model', 'model.n_layers',
  'model.n_heads', 'model.ffn_dim',
]);

export function runFacts(runs: GatheredRun[], options: FactsOptions = {}): RunFacts[] {
  const sizes = runs.map((r) => sizeOf(r.record.config));
  const extras = groupingKeys(runs.map((r) => r.record.config), sizes.map((s) => s.label));
  const readers = new Map<string, AnalysisReader>();
  const reader = (file: string) => readers.get(file) ?? readers.set(file, AnalysisReader.open(file)).get(file)!;
  try {
    return runs.map((g, i) => runFactsOf(g, sizes[i]!, extras, reader(g.store.file), options));
  } finally {
    readers.forEach((r) => r.close());
  }
}

function runFactsOf(g: GatheredRun, size: Size, extras: string[], analyses: AnalysisReader, options: FactsOptions): RunFacts {
  const { record, store } = g;
  const config = record.config;
  const flat = flatten(config);
  const settings = Object.fromEntries(extras.map((k) => [k, flat[k]]));
  const extra = settingLabel(settings);
  const valLoss = store.lastScalar(record.id, 'val/loss');
  const valPpl = store.lastScalar(record.id, 'val/ppl');
  return {
    id: record.id, sweep: record.sweep, status: record.status, seed: record.seed,
    strategy: config.model.norm, size,
    group: `${strategyLabel(config.model.norm)}${extra ? ` ${extra}` : ''}`, settings,
    step: record.step, totalSteps: record.totalSteps, divergedStep: record.divergedStep, backend: backendLabel(record),
    tokenizer: tokenizerLabel(record),
    ...(valLoss !== undefined && { valLoss }),
    ...(valPpl !== undefined && { valPpl }),
    gradNorm: layerProfile(g, 'grad_norm', config.model.n_layers),
    outputVar: layerProfile(g, 'output_var', config.model.n_layers),
    analyses: readRunAnalyses(analyses, record.id, config.model.n_layers, options.analysisStep, options.analysisSet),
    source: g,
  };
}

/** Settings as a row label shows them, e.g. `lr=0.002 mix_alpha=0.25`, leaving out the `omit` keys; a key a run lacks shows as `—`. */
export function settingLabel(settings: Record<string, unknown>, omit: string[] = []): string {
  return Object.entries(settings).filter(([k]) => !omit.includes(k))
    .map(([k, v]) => `${k.split('.').at(-1)}=${v === undefined ? '—' : JSON.stringify(v)}`).join(' ');
}

export function strategyLabel(strategy: string): string {
  return STRATEGY_LABELS[strategy] ?? strategy;
}

export function strategyRank(strategy: string): number {
  const i = Object.keys(STRATEGY_LABELS).indexOf(strategy);
  return i < 0 ? Object.keys(STRATEGY_LABELS).length : i;
}

export function sizeOf(config: RunConfig): Size {
  const m = config.model;
  const preset = config.model_preset !== undefined ? PRESETS[config.model_preset] : undefined;
  const matchesPreset = preset !== undefined && (['d_model', 'n_layers', 'ffn_dim'] as const).every((k) => preset[k] === m[k]);
  return {
    label: matchesPreset ? `${config.model_preset} (${m.n_layers}L d${m.d_model})` : `${m.n_layers}L d${m.d_model}`,
    blockParams: m.n_layers * (4 * m.d_model * m.d_model + 3 * m.d_model * m.ffn_dim),
    layers: m.n_layers,
  };
}

/** Settings that differ between two runs of the same size: they split rows. */
function groupingKeys(configs: RunConfig[], sizeLabels: string[]): string[] {
  const flat = configs.map((c) => flatten(c));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].filter((k) => !NOT_GROUPING.has(k) && !k.startsWith('output.'));
  return keys.filter((k) => flat.some((a, i) => flat.some((b, j) =>
    sizeLabels[i] === sizeLabels[j] && JSON.stringify(a[k]) !== JSON.stringify(b[k]))));
}

export function flatten(obj: object, prefix = ''): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.entries(flatten(v, `${prefix}${k}.`)) : [[`${prefix}${k}`, v]]));
}

function layerProfile(g: GatheredRun, name: string, layers: number): LayerProfile {
  const { store, record } = g;
  const steps = store.layerSteps(record.id, name);
  if (!steps) return { steps: 0 };
  const byBlock = (m: Map<number, number>) => Array.from({ length: layers }, (_, b) => m.get(b + 1) ?? NaN);
  const lowestRatio = store.lowestRatio(record.id, name, 1, layers);
  return {
    steps: steps.count, firstStep: steps.first, lastStep: steps.last,
    first: byBlock(store.layerAt(record.id, name, steps.first)),
    last: byBlock(store.layerAt(record.id, name, steps.last)),
    mean: byBlock(store.layerMeans(record.id, name)),
    ...(lowestRatio && { lowestRatio }),
  };
}

export function mean(vs: number[]): number {
  const ok = vs.filter(Number.isFinite);
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
}

/** Sample standard deviation (n − 1); null for fewer than two values. */
export function std(vs: number[]): number | null {
  if (vs.length < 2) return null;
  const m = mean(vs);
  return Math.sqrt(vs.reduce((a, v) => a + (v - m) ** 2, 0) / (vs.length - 1));
}

/** Groups in the papers' strategy order, then by label. */
export function orderedGroups(facts: RunFacts[]): string[] {
  const first = new Map<string, RunFacts>();
  for (const f of facts) if (!first.has(f.group)) first.set(f.group, f);
  return [...first.values()]
    .sort((a, b) => strategyRank(a.strategy) - strategyRank(b.strategy) || (a.group < b.group ? -1 : a.group > b.group ? 1 : 0))
    .map((f) => f.group);
}

export function orderedSizes(facts: RunFacts[]): Size[] {
  const bySize = new Map<string, Size>();
  for (const f of facts) bySize.set(f.size.label, f.size);
  return [...bySize.values()].sort((a, b) => a.blockParams - b.blockParams);
}

/** The backend with the run's precision (train.precision as resolved), e.g. `torch bf16`; runs before it was recorded show the backend alone. */
export function backendLabel(record: { backend: string; versions: Record<string, string> }): string {
  const precision = record.versions.precision;
  return precision ? `${record.backend} ${precision}` : record.backend;
}

/** A warning when the runs' perplexities are per tokens of different tokenizers, else undefined. */
export function mixedTokenizerWarning(facts: RunFacts[]): string | undefined {
  const tokenizers = [...new Set(facts.map((f) => f.tokenizer))];
  return tokenizers.length > 1
    ? `WARNING: these runs used different tokenizers (${tokenizers.join('; ')}): perplexities are per token of each, so the val ppl column mixes incomparable numbers.`
    : undefined;
}

/** The run's tokenizer as recorded at its start (older runs: the config's name); LLaMA's and GPT-2's vocabularies are marked. */
export function tokenizerLabel(record: { config: RunConfig; versions: Record<string, string> }): string {
  const label = record.versions.tokenizer ?? record.config.data.tokenizer;
  return ['llama', 'gpt2'].includes(label) ? `${label} (not comparable with the papers' perplexities)` : label;
}
