// Sweep files: the subset of the Weights & Biases sweep format that normlab
// runs (base config, grid|random, values / value / distribution, run_cap, metric).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML, { YAMLParseError } from 'yaml';
import { z, ZodError, type ZodIssue } from 'zod';
import { aliasBomb, ConfigError, describe, zodProblems, type ConfigProblem } from '../config/errors.ts';
import { nameProblem } from '../config/names.ts';
import { keysAt } from '../config/schema.ts';

export const DISTRIBUTIONS = ['uniform', 'log_uniform_values', 'int_uniform', 'categorical'] as const;
export type Distribution = (typeof DISTRIBUTIONS)[number];

/** The scalars a run records; a sweep's `metric` must be one of them. */
export const SWEEP_METRICS = ['val/ppl', 'val/loss', 'train/loss', 'train/grad_norm', 'train/tokens_per_s'] as const;

const num = () => z.number().finite();

const parameterSchema = z
  .object({
    value: z.unknown().optional(),
    values: z.array(z.unknown()).min(1).optional(),
    distribution: z.enum(DISTRIBUTIONS).optional(),
    min: num().optional(),
    max: num().optional(),
  })
  .strict();

const sweepSchema = z
  .object({
    /** Names the sweep's runs and its folder; absent: the file's name. */
    name: z.string().optional(),
    description: z.string().optional(),
    /** The run config every run starts from, relative to the sweep file. */
    base: z.string().min(1),
    method: z.enum(['grid', 'random']),
    parameters: z.record(parameterSchema),
    run_cap: z.number().int().min(1).optional(),
    metric: z.object({ name: z.enum(SWEEP_METRICS), goal: z.enum(['minimize', 'maximize']) }).strict().optional(),
    /** Seed of random search, so a restarted sweep samples the same runs (a normlab addition). */
    seed: z.number().int().min(0).default(0),
  })
  .strict();

/** How one parameter chooses its value for a run. */
export type ParameterSpec =
  | { kind: 'values'; values: unknown[] }
  | { kind: 'range'; distribution: Exclude<Distribution, 'categorical'>; min: number; max: number };

export interface Parameter {
  /** A dotted config key, or a bundle's name (its values are mappings of dotted keys). */
  key: string;
  bundle: boolean;
  spec: ParameterSpec;
}

export interface SweepSpec {
  file: string;
  name: string;
  description?: string;
  /** Absolute path of the base run config. */
  base: string;
  method: 'grid' | 'random';
  parameters: Parameter[];
  runCap?: number;
  metric?: { name: (typeof SWEEP_METRICS)[number]; goal: 'minimize' | 'maximize' };
  seed: number;
}

/** Keys a run's identity or its place on disk depend on, which the sweep itself sets. */
const RESERVED_KEYS = ['name', 'output'];

export function loadSweep(file: string): SweepSpec {
  const doc = readYaml(file);
  const parsed = sweepSchema.safeParse(doc);
  if (!parsed.success) throw new ConfigError(file, sweepProblems(parsed.error, doc));
  const s = parsed.data;
  if (Object.keys(s.parameters).length === 0) {
    throw new ConfigError(file, [{ key: 'parameters', detail: 'expected at least one parameter' }]);
  }
  const parameters = Object.entries(s.parameters).map(([key, p]) => parameter(file, key, p, s.method));
  if (s.method === 'random' && s.run_cap === undefined) {
    throw new ConfigError(file, [{ key: 'run_cap', detail: 'random search needs run_cap (the number of runs to sample)' }]);
  }
  return {
    file, name: sweepName(file, s.name), base: path.resolve(path.dirname(file), s.base),
    ...(s.description !== undefined && { description: s.description }),
    method: s.method, parameters, seed: s.seed,
    ...(s.run_cap !== undefined && { runCap: s.run_cap }),
    ...(s.metric !== undefined && { metric: s.metric }),
  };
}

/** The sweep's name (absent: the file's): it names folders, runs and the Slurm job, so one safe folder name. */
function sweepName(file: string, name: string | undefined): string {
  const resolved = name ?? path.parse(file).name;
  const problem = nameProblem(resolved);
  if (problem === null) return resolved;
  const detail = name === undefined ? `the sweep file's name is used as the sweep name and is not usable: ${problem}; set name:` : problem;
  throw new ConfigError(file, [{ key: 'name', detail }]);
}

type RawParameter = z.output<typeof parameterSchema>;

function parameter(file: string, key: string, p: RawParameter, method: 'grid' | 'random'): Parameter {
  const where = `parameters.${key}`;
  const fail = (detail: string): never => { throw new ConfigError(file, [{ key: where, detail }]); };
  const bundle = !key.includes('.') && !(keysAt([])?.includes(key) ?? false);
  if (!bundle) checkConfigKey(file, where, key);
  const spec = parameterSpec(p, fail);
  if (method === 'grid' && spec.kind === 'range') fail(`grid search needs value or values; ${spec.distribution} needs method: random`);
  if (bundle) checkBundle(file, where, spec);
  return { key, bundle, spec };
}

/** value, values (optionally `distribution: categorical`), or a distribution over [min, max]. */
function parameterSpec(p: RawParameter, fail: (detail: string) => never): ParameterSpec {
  const hasRange = p.min !== undefined || p.max !== undefined;
  if (p.value !== undefined) {
    const others = [p.values && 'values', p.distribution && 'distribution', hasRange && 'min/max'].filter(Boolean);
    if (others.length) fail(`give value alone (got value with ${others.join(', ')})`);
    return { kind: 'values', values: [p.value] };
  }
  if (p.values !== undefined) {
    if (p.distribution !== undefined && p.distribution !== 'categorical') fail(`values go with distribution categorical, not ${p.distribution}`);
    if (hasRange) fail('give values or min/max, not both');
    return { kind: 'values', values: p.values };
  }
  if (p.distribution === 'categorical') fail('distribution categorical needs values');
  if (p.min === undefined || p.max === undefined) return fail('expected value, values, or a distribution with min and max');
  const { min, max } = p;
  // W&B infers the distribution from min/max when it is not given.
  const distribution = p.distribution ?? (Number.isInteger(min) && Number.isInteger(max) ? 'int_uniform' : 'uniform');
  if (min > max) fail(`min ${min} is greater than max ${max}`);
  if (distribution === 'log_uniform_values' && min <= 0) fail(`log_uniform_values needs min > 0, got ${min}`);
  if (distribution === 'int_uniform' && !(Number.isInteger(min) && Number.isInteger(max))) fail('int_uniform needs integer min and max');
  return { kind: 'range', distribution, min, max };
}

/** Dotted keys must exist in the run config, and must not be ones the sweep sets itself. */
function checkConfigKey(file: string, where: string, key: string): void {
  const segs = key.split('.');
  if (RESERVED_KEYS.includes(segs[0]!)) {
    throw new ConfigError(file, [{ key: where, detail: `${segs[0]} is set by the sweep (run name, per-run output), not a parameter` }]);
  }
  segs.forEach((seg, i) => {
    const known = keysAt(segs.slice(0, i));
    if (known === null) throw new ConfigError(file, [{ key: where, detail: `${segs.slice(0, i).join('.')} is a value, not a section` }]);
    if (!known.includes(seg)) {
      throw new ConfigError(file, [{ key: where, detail: `${segs.slice(0, i + 1).join('.')} is not a config key (expected one of ${known.join(', ')})` }]);
    }
  });
  if (keysAt(segs) !== null) {
    throw new ConfigError(file, [{ key: where, detail: `${key} is a section; name one of its keys (${keysAt(segs)!.join(', ')})` }]);
  }
}

/** A bundle sets several keys together (e.g. a model size and its recipe): each value is a mapping of dotted keys. */
function checkBundle(file: string, where: string, spec: ParameterSpec): void {
  if (spec.kind !== 'values') return;
  spec.values.forEach((v, i) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new ConfigError(file, [{
        key: `${where}.values[${i}]`,
        detail: `is not a config key, so it is read as a bundle whose values are mappings of dotted keys; got ${describe(v)}`,
      }]);
    }
    for (const key of Object.keys(v)) {
      checkConfigKey(file, `${where}.values[${i}].${key}`, key);
    }
  });
}

// Zod's unknown-key message lists the run config's keys; here the sweep file's are meant.
function sweepProblems(error: ZodError, input: unknown): ConfigProblem[] {
  return error.issues.flatMap((issue: ZodIssue): ConfigProblem[] => {
    if (issue.code !== 'unrecognized_keys') return zodProblems(new ZodError([issue]), input);
    const at = issue.path.map(String);
    const known = at.length === 0 ? Object.keys(sweepSchema.shape)
      : at[0] === 'parameters' ? Object.keys(parameterSchema.shape)
        : at[0] === 'metric' ? ['name', 'goal'] : [];
    return issue.keys.map((k) => ({ key: [...at, k].join('.'), detail: `unknown key (expected one of ${known.join(', ')})` }));
  });
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new ConfigError(file, [{ key: null, detail: `cannot read sweep file (${why})` }]);
  }
  try {
    return YAML.parse(text) ?? {};
  } catch (e) {
    if (e instanceof YAMLParseError) throw new ConfigError(file, [{ key: null, detail: `YAML syntax error: ${e.message.split('\n')[0]}` }]);
    const bomb = aliasBomb(e);
    if (bomb) throw new ConfigError(file, [bomb]);
    throw e;
  }
}
