// normlab sample <run | checkpoint> [--prompt TEXT] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--step N]
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { resolveTarget } from '../analyze/checkpoint-analysis.ts';
import { loadTextTokenizer } from '../data/tokenizers.ts';
import type { ModelConfig } from '../model/config.ts';
import { generate, type SampleOptions } from '../model/generate.ts';
import { Model } from '../model/model.ts';
import { loadCheckpoint } from '../train/checkpoint.ts';
import { startBackend, UsageError } from './common.ts';
import type { SetExitCode } from './main.ts';

export interface SampleFlags {
  prompt: string;
  maxTokens: string;
  temperature: string;
  topK: string;
  topP: string;
  seed: string;
  step?: string;
  backend: string;
}

function numberFlag(flag: string, value: string, ok: (n: number) => boolean, expected: string): number {
  const n = Number(value);
  if (value.trim() === '' || !ok(n)) throw new UsageError(`${flag}: expected ${expected}, got "${value}"`);
  return n;
}

function sampleOptions(flags: SampleFlags): Omit<SampleOptions, 'stop'> {
  const int = (min: number) => (n: number) => Number.isInteger(n) && n >= min;
  return {
    maxTokens: numberFlag('--max-tokens', flags.maxTokens, int(1), 'a positive integer'),
    temperature: numberFlag('--temperature', flags.temperature, (n) => n >= 0 && Number.isFinite(n), 'a number ≥ 0 (0: the most likely token)'),
    topK: numberFlag('--top-k', flags.topK, int(0), 'an integer ≥ 0 (0: no limit)'),
    topP: numberFlag('--top-p', flags.topP, (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    seed: numberFlag('--seed', flags.seed, (n) => int(0)(n) && n < 2 ** 32, 'an integer in [0, 2³²)'),
  };
}

/** The checkpoint, model and tokenizer to sample from: a run's (its run.json), or a lone checkpoint folder's own config files. */
function sampleTarget(target: string, step?: number): { checkpointDir: string; model: ModelConfig; tokenizer: string } {
  const lone = existsSync(join(target, 'state.json')) && !existsSync(resolve(target, '..', '..', 'run.json'));
  if (!lone) {
    const t = resolveTarget(target, step);
    return { checkpointDir: t.checkpointDir, model: t.config.model, tokenizer: t.config.data.tokenizer };
  }
  const read = (name: string) => {
    try {
      return JSON.parse(readFileSync(join(target, name), 'utf8'));
    } catch {
      throw new UsageError(`${join(target, name)}: missing or not JSON; a checkpoint outside its run folder needs its config.json and generation_config.json`);
    }
  };
  const name = read('generation_config.json').normlab_tokenizer?.name;
  const model = read('config.json').normlab;
  if (!model || typeof name !== 'string') throw new UsageError(`${target}: config.json has no "normlab" model config or generation_config.json no tokenizer name`);
  // A tokenizer file was copied into the checkpoint as tokenizer.json.
  return { checkpointDir: resolve(target), model, tokenizer: name === 'tokenizer.json' ? resolve(target, name) : name };
}

/** normlab sample: its flags are declared in sample-command.ts, which imports this module only when the command runs. */
export async function sampleCommand(targetArg: string, flags: SampleFlags, setExitCode: SetExitCode): Promise<void> {
  const opts = sampleOptions(flags);
  const step = flags.step === undefined ? undefined : numberFlag('--step', flags.step, (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
  const target = sampleTarget(targetArg, step);
  const tokenizer = await loadTextTokenizer(target.tokenizer);
  await startBackend(flags.backend);
  const { params } = loadCheckpoint(target.checkpointDir, { optimizer: false });
  const model = new Model(target.model);
  try {
    // Training documents each follow an end-of-document id; so does the prompt.
    const prompt = [tokenizer.eot, ...Array.from(await tokenizer.encode(flags.prompt))];
    const ids = generate(model, params, prompt, { ...opts, stop: tokenizer.eot });
    const text = await tokenizer.decode(ids.filter((id) => id !== tokenizer.eot));
    process.stdout.write(`${flags.prompt}${text}\n`);
  } finally {
    tf.dispose(Object.values(params));
    model.dispose();
  }
  setExitCode(0);
}
