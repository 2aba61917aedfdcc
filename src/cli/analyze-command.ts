// normlab analyze's command line, declared without loading the analyses
// (analyze.ts, TensorFlow.js), which are imported only when the command runs.
import type { Command } from 'commander';
import { ANALYSES } from '../analyze/names.ts';
import { backendOption } from './common.ts';
import type { AnalyzeFlags } from './analyze.ts';
import type { SetExitCode } from './main.ts';

export function registerAnalyze(program: Command, setExitCode: SetExitCode): void {
  program
    .command('analyze')
    .description('layer analyses of a run\'s checkpoint on validation data, stored once per (run, step, analysis, sample set)')
    .argument('<target>', 'run id (under runs/), run folder, or checkpoint folder')
    .option('--step <n>', 'checkpoint step (default: the latest)')
    .option('--what <list>', `comma-separated analyses: ${ANALYSES.join(',')}`, ANALYSES.join(','))
    .option('--samples <n>', 'validation sequences to analyse', '16')
    .option('--force', 'recompute analyses already stored for this sample set')
    .addOption(backendOption())
    .action(async (targetArg: string, flags: AnalyzeFlags) => {
      const { analyzeCommand } = await import('./analyze.ts');
      await analyzeCommand(targetArg, flags, setExitCode);
    });
}
