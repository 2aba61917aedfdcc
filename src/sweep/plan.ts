// A sweep expanded into its plan: the exact list of runs, each a fully resolved
// config with its identity, and where the plan is kept for workers and reports.
import { readFileSync, renameSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { pathUnder } from '../config/names.ts';
import { ConfigError, loadRunConfig, resolveRunConfig, setKey } from '../config/load.ts';
import type { RunConfig } from '../config/schema.ts';
import { hash32, Rng } from '../data/rng.ts';
import { runIdentity } from '../train/run.ts';
import type { Parameter, ParameterSpec, SweepSpec } from './sweepfile.ts';

/** One key set to one value: what distinguishes a planned run from the base config. */
export type Override = [key: string, value: unknown];

export interface PlannedRun {
  /** 1-based position in the plan (a Slurm array index later). */
  index: number;
  id: string;
  /** configHash of the resolved config: the run's identity. */
  hash: string;
  /** The run's folder, relative to where the sweep was started, as the base config's runs_dir is. */
  dir: string;
  overrides: Override[];
  config: RunConfig;
}

export interface Plan {
  sweep: string;
  file: string;
  method: 'grid' | 'random';
  metric?: SweepSpec['metric'];
  runs: PlannedRun[];
  /** Parameter combinations that resolved to a run already in the plan (e.g. mix_alpha under pre). */
  duplicates: number;
}

/** Every run of a sweep writes only its own database, in its own folder: no two machines share a SQLite file. */
export const RUN_DB = 'run.sqlite';

export function expandSweep(spec: SweepSpec): Plan {
  loadRunConfig(spec.base); // the base must be a valid config on its own; its errors name its own file
  const base = YAML.parse(readFileSync(spec.base, 'utf8')) as Record<string, unknown>;
  const count = plannedCount(spec);
  const capped = spec.method === 'grid' ? gridCombos(spec.parameters, count) : randomCombos(spec.parameters, count, spec.seed);
  const runs: PlannedRun[] = [];
  const seen = new Set<string>();
  for (const overrides of capped) {
    const run = plannedRun(spec, base, overrides, runs.length + 1);
    if (seen.has(run.id)) continue;
    seen.add(run.id);
    runs.push(run);
  }
  return {
    sweep: spec.name, file: spec.file, method: spec.method,
    ...(spec.metric && { metric: spec.metric }),
    runs, duplicates: capped.length - runs.length,
  };
}

function plannedRun(spec: SweepSpec, base: Record<string, unknown>, overrides: Override[], index: number): PlannedRun {
  const source = `${spec.file} (run ${index}: ${formatOverrides(overrides)})`;
  let obj = setKey(base, 'name', spec.name, source);
  for (const [key, value] of overrides) obj = setKey(obj, key, value, source);
  const config = resolveRunConfig(obj, source, path.dirname(spec.base));
  const { id, hash } = runIdentity(config);
  const dir = path.join(config.output.runs_dir, id); // runIdentity checked it lies under runs_dir
  // Output paths are not hashed, so pointing the run at its own database keeps its identity.
  config.output.db = path.join(dir, RUN_DB);
  return { index, id, hash, dir, overrides, config };
}

/** The most runs one sweep may plan: a plan is held, written and listed whole. */
export const MAX_SWEEP_RUNS = 10_000;

/** How many runs the sweep plans (grid size or run_cap, the smaller), counted before anything is expanded. */
function plannedCount(spec: SweepSpec): number {
  const sizes = spec.method === 'grid' ? spec.parameters.map((p) => choices(p.spec).length) : [];
  const grid = sizes.reduce((a, b) => a * b, 1);
  const count = spec.method === 'grid' ? Math.min(grid, spec.runCap ?? Infinity) : spec.runCap!;
  if (count <= MAX_SWEEP_RUNS) return count;
  const what = spec.method === 'grid' && count === grid
    ? { key: 'parameters', detail: `the grid has ${grid.toLocaleString('en')} runs (${sizes.join(' × ')})` }
    : { key: 'run_cap', detail: `${count.toLocaleString('en')} runs` };
  throw new ConfigError(spec.file, [{ key: what.key, detail: `${what.detail}; a sweep plans at most ${MAX_SWEEP_RUNS.toLocaleString('en')}: split it into several sweeps or lower run_cap` }]);
}

/** The first `count` combinations of the parameters' values, the first parameter varying slowest. */
function gridCombos(parameters: Parameter[], count: number): Override[][] {
  return Array.from({ length: count }, (_, i) => {
    // Combination i in mixed radix, the last parameter's digit lowest.
    const picks: Override[][] = [];
    for (let k = parameters.length - 1, rest = i; k >= 0; k--) {
      const values = choices(parameters[k]!.spec);
      picks.unshift(assign(parameters[k]!, values[rest % values.length]));
      rest = Math.floor(rest / values.length);
    }
    return picks.flat();
  });
}

function choices(spec: ParameterSpec): unknown[] {
  if (spec.kind !== 'values') throw new Error('grid parameters have values (checked when the sweep was loaded)');
  return spec.values;
}

/** `count` runs, each parameter drawn independently; run i's draws depend only on (seed, i). */
function randomCombos(parameters: Parameter[], count: number, seed: number): Override[][] {
  return Array.from({ length: count }, (_, i) => {
    const rng = new Rng(hash32(seed, i));
    return parameters.flatMap((p) => assign(p, sample(p.spec, rng)));
  });
}

function sample(spec: ParameterSpec, rng: Rng): unknown {
  if (spec.kind === 'values') return spec.values[Math.floor(rng.nextFloat() * spec.values.length)];
  const u = rng.nextFloat();
  switch (spec.distribution) {
    case 'uniform': return spec.min + u * (spec.max - spec.min);
    case 'int_uniform': return spec.min + Math.floor(u * (spec.max - spec.min + 1));
    case 'log_uniform_values': return Math.exp(Math.log(spec.min) + u * (Math.log(spec.max) - Math.log(spec.min)));
  }
}

/** A bundle's value sets each of its keys; any other parameter sets its own key. */
function assign(p: Parameter, value: unknown): Override[] {
  return p.bundle ? Object.entries(value as Record<string, unknown>) : [[p.key, value]];
}

export function formatOverrides(overrides: Override[]): string {
  return overrides.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
}

/** Where the sweep's runs go: the base config's runs_dir (the sweep cannot override it). */
export function runsDirOf(plan: Plan): string {
  return plan.runs[0]?.config.output.runs_dir ?? 'runs';
}

export function planPath(runsDir: string, sweep: string): string {
  const sweeps = path.join(runsDir, 'sweeps');
  pathUnder(sweeps, sweep);
  return path.join(sweeps, sweep, 'plan.json');
}

/** Writes the plan under the sweep's folder (atomically: workers on other machines may be reading it). */
export function writePlan(plan: Plan): string {
  const file = planPath(runsDirOf(plan), plan.sweep);
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(plan, null, 2));
  renameSync(tmp, file);
  return file;
}

export function readPlan(file: string): Plan {
  return JSON.parse(readFileSync(file, 'utf8')) as Plan;
}
