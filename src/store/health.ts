// Whether a store file and the folder it lives in can hold a run, checked before
// anything is written; and `normlab db check / repair` for a damaged file.
import { closeSync, existsSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/** A store file or runs folder that cannot be used: one paragraph naming it and the way out; exit 2. */
export class StoreFileError extends Error {
  readonly exitCode = 2;
}

// Virtual file systems: mkdir there fails late or hangs (a FUSE or /proc entry), never a place for runs.
const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev'];

/** `dir` (output.runs_dir) is a writable folder, or can be created as one. */
export function checkRunsDir(dir: string): void {
  const resolved = path.resolve(dir);
  if (VIRTUAL_ROOTS.some((root) => resolved === root || resolved.startsWith(`${root}/`))) {
    throw new StoreFileError(`output.runs_dir: ${resolved} is on a virtual file system (${resolved.split('/')[1]}), not a place for runs; choose a folder on a disk`);
  }
  // The nearest existing ancestor decides: it must be a folder we may write in.
  let existing = resolved;
  while (!existsSync(existing)) existing = path.dirname(existing);
  if (!statSync(existing).isDirectory()) {
    throw new StoreFileError(`output.runs_dir: ${existing} is a file, not a folder; choose another runs_dir or move the file away`);
  }
  // A probe file rather than access(W_OK): that ignores read-only mounts' subtleties and root's rights.
  try {
    const probe = path.join(existing, `.normlab-probe-${process.pid}`);
    closeSync(openSync(probe, 'wx'));
    rmSync(probe);
  } catch (e) {
    throw new StoreFileError(`output.runs_dir: cannot write in ${existing} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); choose a writable runs_dir`);
  }
}

/** Everything a run writes can go where its config says: runs_dir, the database's folder, the database. */
export function checkOutputs(output: { runs_dir: string; db: string }): void {
  checkRunsDir(output.runs_dir);
  if (path.dirname(path.resolve(output.db)) !== path.resolve(output.runs_dir)) checkRunsDir(path.dirname(output.db));
  checkStoreFile(output.db);
}

const HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** Why `file` is not a usable SQLite database, or null when it looks whole (or does not exist yet). */
export function storeFileProblem(file: string): string | null {
  if (!existsSync(file)) return null;
  const stat = statSync(file);
  if (stat.isDirectory()) return 'is a folder, not a database file';
  if (stat.size === 0) return null; // SQLite reads an empty file as an empty database
  const header = Buffer.alloc(100);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  if (!header.subarray(0, 16).equals(HEADER)) return 'is not an SQLite database (its first bytes are not "SQLite format 3")';
  // The header's page size and page count (valid when its version-valid-for equals its change counter).
  const pageSize = header.readUInt16BE(16) === 1 ? 65536 : header.readUInt16BE(16);
  const pages = header.readUInt32BE(28);
  if (header.readUInt32BE(92) === header.readUInt32BE(24) && stat.size < pageSize * pages) {
    return `is truncated (${stat.size.toLocaleString('en')} bytes, its header says ${(pageSize * pages).toLocaleString('en')})`;
  }
  return null;
}

/** Refuses a store file that cannot be opened, with the commands that fix it. */
export function checkStoreFile(file: string): void {
  const problem = storeFileProblem(file);
  if (problem === null) return;
  if (problem.startsWith('is a folder')) {
    throw new StoreFileError(`output.db: ${file} ${problem}; point output.db at a file, or move the folder away`);
  }
  throw new StoreFileError(`${file} ${problem}. \`normlab db check ${file}\` says what is wrong; \`normlab db repair ${file}\` moves it aside and keeps what can be read (runs whose metrics are then incomplete are refused on resume: \`normlab train --restart\` trains them again)`);
}

export interface CheckResult {
  ok: boolean;
  problems: string[];
  runs?: number;
}

/** The file's header, then SQLite's own integrity check. */
export function checkDatabase(file: string): CheckResult {
  if (!existsSync(file)) return { ok: false, problems: [`${file}: no such file`] };
  const problem = storeFileProblem(file);
  if (problem) return { ok: false, problems: [`${file} ${problem}`] };
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const rows = db.pragma('integrity_check') as { integrity_check: string }[];
      const problems = rows.map((r) => r.integrity_check).filter((r) => r !== 'ok').map((r) => `${file}: ${r}`);
      const runs = (db.prepare('SELECT count(*) AS n FROM runs').get() as { n: number }).n;
      return { ok: problems.length === 0, problems, runs };
    } finally {
      db.close();
    }
  } catch (e) {
    return { ok: false, problems: [`${file}: ${(e as Error).message}`] };
  }
}

export interface RepairResult {
  movedTo: string;
  tables: { name: string; rows: number; complete: boolean }[];
}

/**
 * Moves a damaged store aside (`<file>.damaged-<time>`, its -wal and -shm with it)
 * and copies into a new file at `file` every row still readable, table by table.
 * The next `normlab train` opens the new file; runs whose metrics it lacks are
 * refused on resume rather than recorded incomplete.
 */
export function repairDatabase(file: string): RepairResult {
  const movedTo = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, movedTo + suffix);
  }
  const tables: RepairResult['tables'] = [];
  let old: Database.Database;
  try {
    old = new Database(movedTo, { readonly: true, fileMustExist: true });
    old.pragma('user_version');
  } catch {
    return { movedTo, tables }; // nothing readable: the next run starts an empty store
  }
  const fresh = new Database(file);
  try {
    const schema = readSchema(old);
    fresh.pragma(`user_version = ${Number(old.pragma('user_version', { simple: true })) || 0}`);
    for (const { name, sql } of schema) {
      fresh.exec(sql);
      if (sql.startsWith('CREATE TABLE')) tables.push(copyRows(old, fresh, name));
    }
  } finally {
    old.close();
    fresh.close();
  }
  return { movedTo, tables };
}

function readSchema(db: Database.Database): { name: string; sql: string }[] {
  try {
    return db.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC, rowid").all() as { name: string; sql: string }[];
  } catch {
    return [];
  }
}

/** Row by row, so a damaged page loses only the rows after it. */
function copyRows(from: Database.Database, to: Database.Database, table: string): RepairResult['tables'][number] {
  let rows = 0;
  let complete = true;
  try {
    const columns = (from.prepare(`PRAGMA table_info("${table}")`).all() as { name: string }[]).map((c) => `"${c.name}"`);
    const insert = to.prepare(`INSERT OR IGNORE INTO "${table}" (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`);
    to.transaction(() => {
      try {
        for (const row of from.prepare(`SELECT ${columns.join(', ')} FROM "${table}"`).raw().iterate() as Iterable<unknown[]>) {
          insert.run(...row);
          rows++;
        }
      } catch {
        complete = false;
      }
    })();
  } catch {
    complete = false;
  }
  return { name: table, rows, complete };
}
