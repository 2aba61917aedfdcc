// YAML file + `--set key=value` overrides → a validated, resolved RunConfig.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML, { YAMLParseError } from 'yaml';
import { checkModelConfig, MODEL_DEFAULTS, ModelConfigError, type ModelConfig } from '../model/config.ts';
import { nameProblem } from './names.ts';
import { aliasBomb, ConfigError, describe, zodProblems, type ConfigProblem } from './errors.ts';
import { NAMED_TOKENIZERS } from '../data/hf.ts';
import { isBuiltinTokenizer, TOKENIZER_NAMES } from '../data/tokenizers.ts';
import { PRESET_NAMES, PRESETS } from './presets.ts';
import {
  keysAt, modelSchema, runConfigInputSchema, TOKENIZER_VOCAB,
  type RunConfig, type RunConfigInput, type TrainConfig,
} from './schema.ts';

export { ConfigError } from './errors.ts';

type Mapping = Record<string, unknown>;

const DEFAULT_WARMUP_STEPS = 100;

export function loadRunConfig(file: string, sets: string[] = []): RunConfig {
  return resolveRunConfig(applySets(readYaml(file), sets, file), file, path.dirname(file));
}

/**
 * Validates and resolves a config object; `source` names it in errors (a file,
 * a sweep entry); a tokenizer file's relative path is resolved against `dir`.
 */
export function resolveRunConfig(obj: unknown, source: string, dir = '.'): RunConfig {
  const parsed = runConfigInputSchema.safeParse(obj);
  if (!parsed.success) throw new ConfigError(source, zodProblems(parsed.error, obj));
  const input = parsed.data;
  const model = resolveModel(input.model, source);
  checkTokenizerFits(model, input, source);
  const { runs_dir, db, tensorboard } = input.output;
  return {
    name: checkName(input.name, source),
    ...(input.model.preset !== undefined && { model_preset: input.model.preset }),
    model,
    train: resolveTrain(input.train),
    data: { ...input.data, tokenizer: tokenizerPath(input.data.tokenizer, dir, source) },
    // Only when asked for: every other run's resolved config stays as it was.
    output: { runs_dir, db: db ?? path.join(runs_dir, 'normlab.sqlite'), ...(tensorboard && { tensorboard }) },
  };
}

/** A copy of `obj` with each `key=value` applied; values parse as YAML scalars (`1e-3`, `true`, `null`). */
export function applySets(obj: Mapping, sets: string[], source: string): Mapping {
  let out = obj;
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new ConfigError(source, [{ key: null, detail: `--set ${set}: expected key=value` }]);
    out = setKey(out, set.slice(0, eq).trim(), parseScalar(set.slice(eq + 1), set, source), source);
  }
  return out;
}

/** A copy of `obj` with the dotted `key` set to `value`; a key the schema lacks is an error. */
export function setKey(obj: Mapping, key: string, value: unknown, source: string): Mapping {
  const segs = key.split('.');
  checkKnownPath(segs, source);
  const out = structuredClone(obj);
  let node = out;
  segs.slice(0, -1).forEach((seg, i) => {
    node[seg] ??= {};
    if (!isMapping(node[seg])) {
      const at = segs.slice(0, i + 1).join('.');
      throw new ConfigError(source, [{ key: at, detail: `expected a mapping to set ${key} in, got ${describe(node[seg])}` }]);
    }
    node = node[seg];
  });
  node[segs[segs.length - 1]] = value;
  // Naming a corpus means training on it: it replaces the config's files
  // (`--set data.corpus=brown` runs a C4 recipe on the embedded corpus).
  if (key === 'data.corpus' && isMapping(out.data)) {
    delete out.data.source;
    delete out.data.val_source;
  }
  return out;
}

function checkKnownPath(segs: string[], source: string): void {
  segs.forEach((seg, i) => {
    const known = keysAt(segs.slice(0, i));
    if (known === null) {
      throw new ConfigError(source, [{ key: segs.join('.'), detail: `${segs.slice(0, i).join('.')} is a value, not a section` }]);
    }
    if (!known.includes(seg)) {
      const key = segs.slice(0, i + 1).join('.');
      throw new ConfigError(source, [{ key, detail: `unknown key (expected one of ${known.join(', ')})` }]);
    }
  });
}

function parseScalar(text: string, set: string, source: string): unknown {
  try {
    return YAML.parse(text);
  } catch {
    throw new ConfigError(source, [{ key: null, detail: `--set ${set}: the value is not a YAML scalar` }]);
  }
}

function readYaml(file: string): Mapping {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new ConfigError(file, [{ key: null, detail: `cannot read config file (${why})` }]);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    if (e instanceof YAMLParseError) throw new ConfigError(file, [yamlProblem(e)]);
    const bomb = aliasBomb(e);
    if (bomb) throw new ConfigError(file, [bomb]);
    throw e;
  }
  if (doc === null || doc === undefined) return {};
  if (!isMapping(doc)) {
    throw new ConfigError(file, [{ key: null, detail: `expected a mapping at the top level, got ${describe(doc)}` }]);
  }
  return doc;
}

// The yaml package appends "at line L, column C:" and a code excerpt; keep one line.
function yamlProblem(e: YAMLParseError): ConfigProblem {
  const reason = e.message.split(' at line ')[0].split('\n')[0];
  const pos = e.linePos?.[0];
  const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
  return { key: null, detail: `YAML syntax error${where}: ${reason}` };
}

function resolveModel(input: RunConfigInput['model'], source: string): ModelConfig {
  const { preset, ...fields } = input;
  const merged = { ...MODEL_DEFAULTS, ...(preset === undefined ? {} : PRESETS[preset]), ...fields };
  const missing = Object.keys(modelSchema.shape).filter((k) => !(k in merged));
  if (missing.length > 0) {
    const hint = `set it, or choose a model.preset (one of ${PRESET_NAMES.join(', ')})`;
    throw new ConfigError(source, missing.map((k) => ({ key: `model.${k}`, detail: `missing: ${hint}` })));
  }
  const parsed = modelSchema.safeParse(merged);
  if (!parsed.success) throw new ConfigError(source, zodProblems(parsed.error, merged, ['model']));
  try {
    checkModelConfig(parsed.data);
  } catch (e) {
    if (e instanceof ModelConfigError) throw new ConfigError(source, [{ key: `model.${e.key}`, detail: e.message }]);
    throw e;
  }
  checkMixIsMix(parsed.data, fields.mix_alpha === 0, source);
  return parsed.data;
}

/**
 * Mix-LN makes the first ⌊α·L⌋ blocks Post-LN; with none, `mix` is `pre` under
 * another name, which would put Pre-LN's result in Mix-LN's row. Only an
 * explicit `mix_alpha: 0` (the papers' α-sweep end point) asks for that.
 */
function checkMixIsMix(model: ModelConfig, explicitZero: boolean, source: string): void {
  const { norm, mix_alpha: alpha, n_layers: layers } = model;
  if (norm !== 'mix' || explicitZero || Math.floor(alpha * layers + 1e-9) >= 1) return;
  const minAlpha = Math.ceil((1 / layers) * 1e4) / 1e4;
  throw new ConfigError(source, [{
    key: 'model.mix_alpha',
    detail: `norm: mix with mix_alpha ${alpha} and n_layers ${layers} makes ⌊${alpha}·${layers}⌋ = 0 blocks Post-LN, so it is Pre-LN; ` +
      `use mix_alpha ≥ ${minAlpha} (1/n_layers)${alpha > 0 ? `, or n_layers ≥ ${Math.ceil(1 / alpha - 1e-9)}` : ''}, ` +
      "or write mix_alpha: 0 explicitly to train Pre-LN as Mix-LN's α = 0 end point",
  }]);
}

/**
 * A warm-up longer than the run is allowed: a few steps of a paper's recipe
 * (`--set train.steps=2`) is a legitimate smoke test whose lr never peaks.
 */
function resolveTrain(train: RunConfigInput['train']): TrainConfig {
  return { ...train, warmup_steps: train.warmup_steps ?? Math.min(DEFAULT_WARMUP_STEPS, train.steps) };
}

/** A built-in or named tokenizer as it is; a file's path made absolute against the config's folder. */
function tokenizerPath(spec: string, dir: string, source: string): string {
  if (isBuiltinTokenizer(spec) || Object.hasOwn(NAMED_TOKENIZERS, spec)) return spec;
  const file = path.resolve(dir, spec);
  if (!existsSync(file)) {
    const known = [...TOKENIZER_NAMES, ...Object.keys(NAMED_TOKENIZERS)].join(', ');
    throw new ConfigError(source, [{ key: 'data.tokenizer', detail: `${file}: no such file or folder; expected ${known}, or a Hugging Face tokenizer.json (or a folder holding one; a relative path is read from the config's folder)` }]);
  }
  return file;
}

/** The run's name (absent: the config file's), one safe folder name since it names the run's folder. */
function checkName(name: string | undefined, source: string): string {
  const resolved = name ?? path.parse(source).name;
  const problem = nameProblem(resolved);
  if (problem === null) return resolved;
  const detail = name === undefined ? `the config file's name is used as the run name and is not usable: ${problem}; set name:` : problem;
  throw new ConfigError(source, [{ key: 'name', detail }]);
}

/** Built-ins only: a tokenizer file must fit by the ids its dataset holds (checked when the data is opened). */
function checkTokenizerFits(model: ModelConfig, input: RunConfigInput, source: string): void {
  const { tokenizer } = input.data;
  if (isBuiltinTokenizer(tokenizer) && model.vocab_size < TOKENIZER_VOCAB[tokenizer]) {
    throw new ConfigError(source, [{
      key: 'model.vocab_size',
      detail: `vocab_size ${model.vocab_size} is smaller than the ${TOKENIZER_VOCAB[tokenizer]} tokens of data.tokenizer ${tokenizer}`,
    }]);
  }
}

function isMapping(v: unknown): v is Mapping {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
