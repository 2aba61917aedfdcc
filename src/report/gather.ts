// Every run under a runs folder, wherever its database is: the shared default
// database of `normlab train` (runs/*.sqlite) and each sweep run's own
// (runs/<run>/run.sqlite). Opened read-only: a reader never writes a file that
// a worker, maybe on another machine, owns.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { RunStore, type RunRecord, type RunStatus } from '../store/store.ts';

export interface GatheredRun {
  record: RunRecord;
  /** The store holding this run's metrics. */
  store: RunStore;
}

export interface Gathered {
  runs: GatheredRun[];
  /** Databases that could not be read, with why. */
  unreadable: string[];
  close(): void;
}

export interface RunFilter {
  sweep?: string;
  status?: RunStatus;
}

/** The database files under `runsDir`: its own *.sqlite and every <run>/run.sqlite. */
export function storeFiles(runsDir: string): string[] {
  if (!existsSync(runsDir)) return [];
  const entries = readdirSync(runsDir, { withFileTypes: true });
  const top = entries.filter((e) => e.isFile() && e.name.endsWith('.sqlite')).map((e) => path.join(runsDir, e.name));
  const perRun = entries.filter((e) => e.isDirectory())
    .map((e) => path.join(runsDir, e.name, 'run.sqlite'))
    .filter((f) => existsSync(f));
  return [...top, ...perRun].sort();
}

/** Opens every store under `runsDir` (and any `extra` files) and lists the runs the filter keeps. */
export function gatherRuns(runsDir: string, filter: RunFilter = {}, extra: string[] = []): Gathered {
  const stores: RunStore[] = [];
  const unreadable: string[] = [];
  const byId = new Map<string, GatheredRun>();
  for (const file of [...storeFiles(runsDir), ...extra]) {
    let store: RunStore;
    let records: RunRecord[];
    try {
      store = RunStore.open(file, { readonly: true });
    } catch (e) {
      unreadable.push(`${file}: ${(e as Error).message}`);
      continue;
    }
    stores.push(store);
    try {
      records = store.listRuns(filter);
    } catch (e) {
      unreadable.push(`${file}: ${(e as Error).message}`); // not a normlab store
      continue;
    }
    for (const record of records) {
      // The same run in two files (e.g. a copied database): keep the one further along.
      const seen = byId.get(record.id);
      if (!seen || record.step > seen.record.step) byId.set(record.id, { record, store });
    }
  }
  const runs = [...byId.values()].sort((a, b) => (a.record.id < b.record.id ? -1 : 1));
  return { runs, unreadable, close: () => stores.forEach((s) => s.close()) };
}
