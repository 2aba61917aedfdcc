// normlab db check [file] | db repair [file]: what is wrong with a store, and a way out.
import type { Command } from 'commander';
import { checkDatabase, repairDatabase } from '../store/health.ts';
import type { SetExitCode } from './main.ts';

const DEFAULT_DB = 'runs/normlab.sqlite';

export function registerDb(program: Command, setExitCode: SetExitCode): void {
  const db = program.command('db').description('check or repair a normlab database');
  db.command('check')
    .description('the file\'s header and SQLite\'s integrity check; exit 1 when damaged')
    .argument('[file]', 'the database', DEFAULT_DB)
    .action((file: string) => {
      const result = checkDatabase(file);
      if (result.ok) {
        console.log(`${file}: ok (${result.runs} run(s))`);
        return;
      }
      for (const problem of result.problems.slice(0, 20)) console.log(problem);
      console.log(`${file} is damaged: \`normlab db repair ${file}\` moves it aside and keeps what can be read`);
      setExitCode(1);
    });
  db.command('repair')
    .description('move a damaged database aside and copy every readable row into a new one')
    .argument('[file]', 'the database', DEFAULT_DB)
    .action((file: string) => {
      if (checkDatabase(file).ok) {
        console.log(`${file}: ok, nothing to repair`);
        return;
      }
      const { movedTo, tables } = repairDatabase(file);
      console.log(`moved the damaged file to ${movedTo}`);
      if (tables.length === 0) console.log(`nothing in it could be read; the next run starts a new ${file}`);
      for (const t of tables) console.log(`${t.name}: ${t.rows} row(s) kept${t.complete ? '' : ', the rest unreadable'}`);
      console.log('a run whose metrics are now incomplete is refused on resume; `normlab train <config> --restart` trains it again');
    });
}
