// normlab train's command line: its flags, declared without loading the trainer
// (train.ts, TensorFlow.js), which is imported only when the command runs.
import type { Command } from 'commander';
import { backendOption, collect } from './common.ts';
import type { SetExitCode } from './main.ts';
import type { TrainFlags } from './train.ts';

export function registerTrain(program: Command, setExitCode: SetExitCode): void {
  program
    .command('train')
    .description('train one model from a YAML config; rerunning an unfinished run resumes it')
    .argument('[config]', 'run config (YAML)')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. --set train.steps=2', collect, [])
    .addOption(backendOption())
    .option('--resume <run>', 'continue a run (its id under runs/, or its folder) from its last good checkpoint')
    .option('--restart', 'discard the run\'s checkpoints and metrics and train from step 0')
    .option('--quiet', 'print nothing but errors')
    .option('--dry-run', 'print the plan (normlab plan) and whether it fits, train nothing, write nothing')
    .option('--nproc-per-node <n>', 'data parallel: train as N ranks on this machine (one per GPU, or sharing the cores) over c10d')
    .action(async (file: string | undefined, flags: TrainFlags) => {
      const { trainCommand } = await import('./train.ts');
      await trainCommand(file, flags, setExitCode);
    });
}
