// normlab doctor [--json]
import { arch, availableParallelism, platform } from 'node:os';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { cudaAdvice } from '../backend/cuda.ts';
import { type BackendReport, type Diagnosis, diagnose } from '../backend/doctor.ts';
import { matMulRate } from '../bench/bench.ts';
import { type NamedTokenizerFinding, namedTokenizers } from '../data/hf.ts';
import { TOKENIZER_NAMES } from '../data/tokenizers.ts';
import type { SetExitCode } from './main.ts';

function backendLines(b: BackendReport): string[] {
  const head = `  ${b.name.padEnd(16)}`;
  if (!b.loads) return [`${head}no   ${b.reason}`];
  const rate = `matMul ${b.matMul!.size}²: ${b.matMul!.gflops.toFixed(1)} GFLOP/s`;
  const lines = [`${head}yes  ${b.version}; ${rate}`];
  if (b.cuda) lines.push(`${' '.repeat(23)}CUDA: ${b.cuda.available ? `yes (${b.cuda.detail})` : `no (${b.cuda.detail})`}`);
  return lines;
}

/** The tokenizers a config can name: the built-in ones, and each named file found here (path, sha256 prefix) or where to put it. */
export function tokenizerLines(found: NamedTokenizerFinding[]): string[] {
  const named = found.map((t) => {
    const head = `  ${t.name.padEnd(19)}`;
    if (!t.path) {
      return `${head}not found: put tokenizer.json at ${t.putAt!.join(' or ')} (looked in ${t.looked!.join(', ')}); ` +
        `on a machine with network access: ${t.download}`;
    }
    const what = t.problem ? `cannot be used: ${t.problem}` : `${t.vocabSize!.toLocaleString('en')} ids`;
    return `${head}${t.path} (sha256 ${t.sha256!.slice(0, 12)}; ${what})`;
  });
  return [
    'tokenizers (data.tokenizer; a tokenizer.json path works too; normlab never downloads)',
    `  ${TOKENIZER_NAMES.join(', ').padEnd(19)}built in`,
    ...named,
  ];
}

function describe(d: Diagnosis, tokenizers: NamedTokenizerFinding[]): string[] {
  const { gpu } = d;
  const missing = d.cudaLibraries.filter((l) => !l.path);
  const libraryLines = d.cudaLibraries.map((l) => {
    const where = l.path ?? [
      'missing',
      l.offPath && `(at ${l.offPath}, off the loader's path)`,
      l.otherVersions.length > 0 && `(other versions: ${l.otherVersions.join(', ')})`,
    ].filter(Boolean).join(' ');
    return `    ${l.name.padEnd(19)}${where}`;
  });
  return [
    `normlab doctor: tfjs ${tf.version.tfjs}, Node ${process.version}, ${platform()} ${arch()}, ${availableParallelism()} CPUs`,
    '',
    'backends',
    ...d.backends.flatMap(backendLines),
    '',
    'GPU',
    `  nvidia-smi         ${gpu.nvidiaSmi ?? 'not found'}${gpu.gpus.length > 0 ? `: ${gpu.gpus.join('; ')}` : ''}`,
    `  /dev/nvidia0       ${gpu.deviceNode ? 'present' : 'absent'}`,
    '  CUDA libraries tensorflow-gpu needs (TensorFlow 2.9: CUDA 11.2, cuDNN 8.1):',
    ...libraryLines,
    ...(missing.length > 0 ? [`  to get them: ${cudaAdvice(missing)}`] : []),
    '',
    ...tokenizerLines(tokenizers),
    '',
    d.gpuSummary,
  ];
}

export function registerDoctor(program: Command, setExitCode: SetExitCode): void {
  program
    .command('doctor')
    .description('which backends load here, their versions and matMul GFLOP/s, the CUDA libraries and GPU a GPU backend needs, and which named tokenizers (t5) are found')
    .option('--json', 'print one JSON object')
    .action(async (flags: { json?: boolean }) => {
      const diagnosis = await diagnose(matMulRate);
      const tokenizers = namedTokenizers();
      console.log(flags.json ? JSON.stringify({ ...diagnosis, tokenizers }) : describe(diagnosis, tokenizers).join('\n'));
      if (!diagnosis.backends.some((b) => b.loads)) setExitCode(1);
    });
}
