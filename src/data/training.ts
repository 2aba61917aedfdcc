// What a training run reads: the config's data (a prepared dataset folder, or
// sources prepared on first use into a cache and reused after), checked
// against the model, as batches with a resumable position.

import { join, resolve } from 'node:path';
import { type Batching, type BatchPosition, Batches, validationBatches } from './batches.ts';
import { type DatasetMeta, isPreparedDataset, openDataset, rowEnds } from './dataset.ts';
import { DataError } from './errors.ts';
import { describeFile } from './hf.ts';
import { DEFAULTS, inputKey, prepareDataset, tokenizerIdentity } from './prepare.ts';
import { resolveSources } from './sources.ts';
import { type AnyTokenizerInfo, tokenizerInfo } from './tokenizers.ts';

/** The config's `data:` section, as the data module needs it. */
export interface DataSpec {
  corpus: string;
  /** Files, folders, globs or corpus names; or one prepared dataset folder. Replaces `corpus` when given. */
  source?: string | string[];
  /** Validation files or globs (C4's c4-validation.*.json.gz); absent: a hash split of the sources. */
  val_source?: string | string[];
  /** Validation tokens each evaluation scores (the first documents of the split); absent: train.eval_batches batches. */
  eval_tokens?: number;
  text_field?: string;
  /** A built-in name, `t5`, or a tokenizer.json (configs resolve a relative path against their folder). */
  tokenizer: string;
  eos_token?: string;
  val_fraction: number;
  split_seed?: number;
  skip_bad_lines?: boolean;
  batching: Batching;
}

export interface BatchSpec {
  batchSize: number;
  seqLen: number;
  seed: number;
  evalBatches: number;
  /** The model's embedding rows: every token id must be below it. */
  vocabSize: number;
}

/** The train loop's TrainingData (src/train/trainer.ts). */
export interface TrainingBatches {
  nextBatch(): Int32Array;
  /** Truncate batching only: loss weights of the last batch, 0 on padding. */
  lastBatchWeights?(): Float32Array;
  position(): BatchPosition;
  seek(position: unknown): void;
  validation: Int32Array[];
  validationWeights?: Float32Array[];
  /** Tokens in the training split. */
  tokens: number;
  /** The prepared dataset's key (DatasetMeta.key): what analyses name as their data. */
  dataset: string;
}

export async function trainingBatches(data: DataSpec, batch: BatchSpec, cacheDir: string): Promise<TrainingBatches> {
  const info = inputsExist(data);
  const dir = await datasetFor(data, info, cacheDir);
  const { meta, train, val } = openDataset(dir, batch.vocabSize);
  checkFits(dir, meta, data, info, batch.vocabSize);
  const batches = Batches.of(data.batching, train, batch.batchSize, batch.seqLen, batch.seed, rowEnds(meta));
  const validation = validationBatches(data.batching, val, batch.batchSize, batch.seqLen, batch.evalBatches, rowEnds(meta), data.eval_tokens);
  return {
    nextBatch: () => batches.next(),
    ...(data.batching === 'truncate' && { lastBatchWeights: () => batches.lastWeights()! }),
    position: () => batches.position(),
    seek: (p) => batches.seek(p as BatchPosition),
    validation: validation.tokens,
    ...(validation.weights && { validationWeights: validation.weights }),
    tokens: train.length,
    dataset: meta.key,
  };
}

/**
 * The tokenizer, once the tokenizer and the sources are known to exist: a
 * fresh machine missing both (C4 and T5 for the paper recipes) hears of both
 * at once.
 */
export function inputsExist(data: DataSpec): AnyTokenizerInfo {
  const problems: string[] = [];
  const attempt = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      problems.push(e.message);
      return undefined;
    }
  };
  const info = attempt(() => tokenizerInfo(data.tokenizer, data.eos_token));
  const specs = data.source === undefined ? [data.corpus] : [data.source].flat();
  const sourcesFound = specs.length === 1 && isPreparedDataset(specs[0]) ? true : attempt(() => resolveSources(specs)) !== undefined;
  if (sourcesFound && data.val_source !== undefined) attempt(() => resolveSources([data.val_source!].flat()));
  if (problems.length > 0) throw new DataError(problems.join('\n'));
  return info!;
}

/** The prepared folder the config names, or its sources' cache folder (prepared now unless up to date). */
async function datasetFor(data: DataSpec, info: AnyTokenizerInfo, cacheDir: string): Promise<string> {
  const specs = data.source === undefined ? [data.corpus] : [data.source].flat();
  const valSources = data.val_source === undefined ? undefined : [data.val_source].flat();
  if (specs.length === 1 && isPreparedDataset(specs[0])) {
    if (valSources) throw new DataError(`data.source ${specs[0]} is a prepared dataset, which holds its own validation split; drop data.val_source, or name the training files in data.source`);
    return specs[0];
  }
  if (valSources?.some((v) => isPreparedDataset(v))) {
    throw new DataError(`data.val_source: ${valSources.find((v) => isPreparedDataset(v))} is a prepared dataset; name the validation files (or globs) themselves, so duplicates of training documents can be dropped`);
  }
  const inputs = {
    tokenizer: tokenizerIdentity(info),
    ...(data.eos_token !== undefined && info.file && { eosToken: data.eos_token }),
    textField: data.text_field ?? DEFAULTS.textField,
    valFraction: data.val_fraction,
    splitSeed: data.split_seed ?? DEFAULTS.splitSeed,
    skipBadLines: data.skip_bad_lines ?? false,
  };
  const valEntries = valSources ? resolveSources(valSources) : [];
  const out = join(resolve(cacheDir), inputKey(resolveSources(specs), inputs, valEntries).slice(0, 16));
  return (await prepareDataset({ sources: specs, ...(valSources && { valSources }), out, ...inputs, tokenizer: data.tokenizer })).dir;
}

/** A prepared folder must match what the config says about it: the config is the run's record. */
function checkFits(dir: string, meta: DatasetMeta, data: DataSpec, info: AnyTokenizerInfo, vocabSize: number): void {
  const mismatch = (key: string, config: unknown, dataset: unknown) => new DataError(
    `${dir} was prepared with ${key} ${dataset}, but the config's data.${key} is ${config}; set data.${key}: ${dataset} (or prepare the dataset again)`);
  if (meta.tokenizerSha256 !== info.file?.sha256 || (!info.file && meta.tokenizer !== info.name)) {
    const prepared = meta.tokenizerSha256 ? `${meta.tokenizer} (sha256 ${meta.tokenizerSha256.slice(0, 12)})` : meta.tokenizer;
    throw new DataError(
      `${dir} was prepared with tokenizer ${prepared}, but the config's data.tokenizer is ${describeFile(info)}: ` +
      'their ids differ; set data.tokenizer to the file the dataset was prepared with, or prepare the dataset again with this one');
  }
  if (meta.split.valSources) return checkIds(dir, meta, vocabSize);
  if (meta.split.valFraction !== data.val_fraction) throw mismatch('val_fraction', data.val_fraction, meta.split.valFraction);
  if (meta.split.seed !== (data.split_seed ?? DEFAULTS.splitSeed)) throw mismatch('split_seed', data.split_seed ?? DEFAULTS.splitSeed, meta.split.seed);
  checkIds(dir, meta, vocabSize);
}

function checkIds(dir: string, meta: DatasetMeta, vocabSize: number): void {
  // The ids must fit, not the vocabulary: t5-base's 100 sentinels past 32,000 never occur in C4.
  if (meta.maxId >= vocabSize) {
    const token = meta.maxToken === undefined ? '' : ` (token ${JSON.stringify(meta.maxToken)})`;
    throw new DataError(
      `${dir}: holds id ${meta.maxId}${token}, not below model.vocab_size ${vocabSize}; ` +
      `set model.vocab_size to at least ${meta.maxId + 1}, or prepare the data with the model's tokenizer`);
  }
}
