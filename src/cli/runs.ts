// normlab runs [--sweep NAME] [--status S] [--runs-dir DIR]
import path from 'node:path';
import { Option, type Command } from 'commander';
import { gatherRuns } from '../report/gather.ts';
import { listing } from '../report/listing.ts';
import { RUN_STATUSES, type RunStatus } from '../store/store.ts';
import { tasksUnder } from '../slurm/submissions.ts';
import { align } from '../sweep/align.ts';
import { isInterrupted } from '../sweep/state.ts';

interface RunsFlags {
  sweep?: string;
  status?: RunStatus;
  runsDir: string;
}

export function registerRuns(program: Command): void {
  program
    .command('runs')
    .description('list runs: strategy, size, seed (precision and lr where they vary), status, progress, last loss, tokens/s, backend, Slurm task (a run whose process is gone shows as interrupted)')
    .option('--sweep <name>', 'only the runs of this sweep')
    .addOption(new Option('--status <status>', 'only runs in this state').choices(RUN_STATUSES))
    .option('--runs-dir <dir>', 'where the runs are: its *.sqlite and every <run>/run.sqlite', 'runs')
    .action(async (flags: RunsFlags) => {
      const gathered = gatherRuns(flags.runsDir, { ...(flags.sweep && { sweep: flags.sweep }), ...(flags.status && { status: flags.status }) });
      try {
        for (const why of gathered.unreadable) console.error(`normlab: warning: skipped ${why}`);
        if (gathered.runs.length === 0) {
          console.log(`no runs in ${flags.runsDir}${flags.sweep ? ` for sweep ${flags.sweep}` : ''}${flags.status ? ` with status ${flags.status}` : ''}`);
          return;
        }
        const [header, ...rows] = listing(gathered.runs, (g) => isInterrupted(g.record, path.join(flags.runsDir, g.record.id)));
        const slurm = await slurmColumn(flags.runsDir, gathered.runs.map((g) => g.record.id));
        const table = slurm ? [[...header!, 'slurm'], ...rows.map((row, i) => [...row, slurm[i]!])] : [header!, ...rows];
        for (const line of align(table)) console.log(line);
      } finally {
        gathered.close();
      }
    });
}

/** Each run's Slurm task and its state, when any of these runs was submitted to Slurm. */
async function slurmColumn(runsDir: string, runIds: string[]): Promise<string[] | undefined> {
  const tasks = tasksUnder(runsDir);
  if (!runIds.some((id) => tasks.has(id))) return undefined;
  // Loaded only here: the Slurm executor brings the sweep planner and the trainer with it.
  const { slurmLabel, slurmView } = await import('../slurm/executor.ts');
  const view = slurmView(runIds, tasks);
  for (const problem of view.states.problems) console.error(`normlab: warning: ${problem}`);
  return runIds.map((id) => slurmLabel(view, id));
}
