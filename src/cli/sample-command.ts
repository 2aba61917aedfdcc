// normlab sample's command line, declared without loading the model (sample.ts,
// TensorFlow.js), which is imported only when the command runs.
import type { Command } from 'commander';
import { backendOption } from './common.ts';
import type { SetExitCode } from './main.ts';
import type { SampleFlags } from './sample.ts';

export function registerSample(program: Command, setExitCode: SetExitCode): void {
  program
    .command('sample')
    .description('text from a trained checkpoint, with the tokenizer the run was trained with')
    .argument('<target>', 'run id (under runs/), run folder, or checkpoint folder')
    .option('--prompt <text>', 'text to continue (default: the start of a document)', '')
    .option('--max-tokens <n>', 'tokens to generate at most (stops early at the end of a document)', '200')
    .option('--temperature <t>', 'softmax temperature; 0 = always the most likely token', '0.8')
    .option('--top-k <k>', 'sample among the k most likely tokens; 0 = all', '0')
    .option('--top-p <p>', 'sample among the most likely tokens holding probability p', '1')
    .option('--seed <s>', 'sampling seed: the same seed gives the same text', '0')
    .option('--step <n>', 'checkpoint step (default: the latest)')
    .addOption(backendOption())
    .action(async (targetArg: string, flags: SampleFlags) => {
      const { sampleCommand } = await import('./sample.ts');
      await sampleCommand(targetArg, flags, setExitCode);
    });
}
