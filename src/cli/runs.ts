// normlab runs [--sweep NAME] [--status S] [--runs-dir DIR]
import { Option, type Command } from 'commander';
import { gatherRuns } from '../report/gather.ts';
import { LISTING_COLUMNS, listingRow } from '../report/listing.ts';
import { RUN_STATUSES, type RunStatus } from '../store/store.ts';
import { align } from '../sweep/describe.ts';

interface RunsFlags {
  sweep?: string;
  status?: RunStatus;
  runsDir: string;
}

export function registerRuns(program: Command): void {
  program
    .command('runs')
    .description('list runs: status, progress, last loss, tokens/s, backend (a "running?" run has not sent a heartbeat for 10 minutes)')
    .option('--sweep <name>', 'only the runs of this sweep')
    .addOption(new Option('--status <status>', 'only runs in this state').choices(RUN_STATUSES))
    .option('--runs-dir <dir>', 'where the runs are: its *.sqlite and every <run>/run.sqlite', 'runs')
    .action((flags: RunsFlags) => {
      const gathered = gatherRuns(flags.runsDir, { ...(flags.sweep && { sweep: flags.sweep }), ...(flags.status && { status: flags.status }) });
      try {
        for (const why of gathered.unreadable) console.error(`normlab: warning: skipped ${why}`);
        if (gathered.runs.length === 0) {
          console.log(`no runs in ${flags.runsDir}${flags.sweep ? ` for sweep ${flags.sweep}` : ''}${flags.status ? ` with status ${flags.status}` : ''}`);
          return;
        }
        for (const line of align([LISTING_COLUMNS, ...gathered.runs.map((g) => listingRow(g))])) console.log(line);
      } finally {
        gathered.close();
      }
    });
}
