// normlab store migrate [FILE…] [--runs-dir DIR]: move stores to the newest schema version.
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { storeFiles } from '../report/gather.ts';
import { RunStore, StoreError } from '../store/store.ts';
import { UsageError } from './common.ts';

const mib = (file: string) => `${(statSync(file).size / 2 ** 20).toFixed(1)} MiB`;

export function registerStore(program: Command): void {
  const store = program.command('store').description('maintain run stores (SQLite files)');
  store
    .command('migrate [files...]')
    .description('convert stores to the newest layout (compact: names once in a dictionary, rows keyed by integers); refuses a store a live run is writing')
    .option('--runs-dir <dir>', 'without files: every *.sqlite and <run>/run.sqlite there', 'runs')
    .action((files: string[], flags: { runsDir: string }) => {
      const targets = files.length ? files : storeFiles(flags.runsDir);
      if (targets.length === 0) throw new UsageError(`no stores in ${flags.runsDir} (give the files, or --runs-dir)`);
      const missing = targets.filter((f) => !existsSync(f));
      if (missing.length) throw new UsageError(`no such store: ${missing.join(', ')}`);
      for (const file of targets) {
        const before = mib(file);
        let steps: string[];
        try {
          steps = RunStore.migrateFile(file);
        } catch (e) {
          if (e instanceof StoreError) throw new UsageError(e.message);
          throw e;
        }
        console.log(steps.length ? `${file}: ${steps.join('; ')} (${before} → ${mib(file)})` : `${file}: already at the newest version`);
      }
    });
}
