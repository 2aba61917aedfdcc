// normlab export tensorboard <run… | --sweep NAME> --out DIR
import path from 'node:path';
import type { Command } from 'commander';
import { gatherRuns } from '../report/gather.ts';
import { UsageError } from './common.ts';

interface ExportFlags {
  sweep?: string;
  runsDir: string;
  out: string;
}

export function registerExport(program: Command): void {
  const exportCommand = program.command('export').description('stored runs in other tools\' formats');
  exportCommand
    .command('tensorboard')
    .description('runs as TensorBoard event files: scalars, per-block diagnostics (layers/…), the config as hparams')
    .argument('[runs...]', 'run ids or run folders (default: every run, or the --sweep\'s)')
    .option('--sweep <name>', 'the runs of this sweep')
    .option('--runs-dir <dir>', 'where the runs are', 'runs')
    .requiredOption('--out <dir>', 'a folder per run is written here (tensorboard --logdir DIR)')
    .action(async (ids: string[], flags: ExportFlags) => {
      if (ids.length && flags.sweep) throw new UsageError('export tensorboard: give run ids or --sweep, not both');
      const gathered = gatherRuns(flags.runsDir, flags.sweep ? { sweep: flags.sweep } : {});
      try {
        const wanted = ids.map((id) => path.basename(path.resolve(id)));
        const missing = wanted.filter((id) => !gathered.runs.some((r) => r.record.id === id));
        if (missing.length) throw new UsageError(`export tensorboard: no run ${missing.join(', ')} in ${flags.runsDir} (see normlab runs --runs-dir ${flags.runsDir})`);
        const runs = wanted.length ? gathered.runs.filter((r) => wanted.includes(r.record.id)) : gathered.runs;
        if (runs.length === 0) throw new UsageError(`export tensorboard: no runs${flags.sweep ? ` of sweep ${flags.sweep}` : ''} in ${flags.runsDir}`);
        const { exportTensorBoard } = await import('../tensorboard/export.ts');
        const done = exportTensorBoard(runs, flags.out);
        console.log(`wrote ${done.events} scalar events of ${runs.length} runs to ${flags.out} (tensorboard --logdir ${flags.out})`);
      } finally {
        gathered.close();
      }
    });
}
