// A sweep expanded into its plan: the exact list of runs, each a fully resolved
// config with its identity, and where the plan is kept for workers and reports.
import { readFileSync, renameSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { pathUnder } from '../config/names.ts';
import { loadRunConfig, resolveRunConfig, setKey } from '../config/load.ts';
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
  const combos = spec.method === 'grid' ? gridCombos(spec.parameters) : randomCombos(spec.parameters, spec.runCap!, spec.seed);
  const capped = spec.runCap === undefined ? combos : combos.slice(0, spec.runCap);
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

/** Every combination of the parameters' values, the first parameter varying slowest. */
function gridCombos(parameters: Parameter[]): Override[][] {
  return parameters.reduce<Override[][]>(
    (combos, p) => combos.flatMap((c) => choices(p.spec).map((v) => [...c, ...assign(p, v)])),
    [[]],
  );
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
