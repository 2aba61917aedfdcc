// normlab bench's command line, declared without loading the benchmark
// (bench.ts, TensorFlow.js), which is imported only when the command runs.
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import type { BenchFlags } from './bench.ts';
import { backendOption, collect } from './common.ts';

const DEFAULT_CONFIG = fileURLToPath(new URL('../../configs/bench/tiny.yaml', import.meta.url));

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}

function gflops(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError('expected GFLOP/s, a positive number');
  return n;
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('time training steps of a model on synthetic tokens: ms/step, tokens/s, GFLOP/s and MFU, memory')
    .argument('[config]', 'run config (YAML); its model and train.batch_size/seq_len are used', DEFAULT_CONFIG)
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .addOption(backendOption())
    .option('--steps <n>', 'timed steps', count, 10)
    .option('--warmup <n>', 'untimed steps first', count, 3)
    .option('--diagnostic-steps <n>', 'timed steps that also compute per-layer diagnostics', count, 3)
    .option('--peak <gflops>', 'the machine\'s float32 peak for MFU (default: measured)', gflops)
    .option('--json', 'print one JSON object')
    .action(async (file: string, flags: BenchFlags) => {
      const { benchCommand } = await import('./bench.ts');
      await benchCommand(file, flags);
    });
}
