// Which code, backend and machine produced each run (its stored `versions`), and
// the warning a comparison needs when its runs came from different code.
//
// A run's code version is normlab's version with its git commit. Runs that
// recorded no commit (older runs, or built outside a git checkout) show
// "unknown": among themselves that is no evidence of a difference, so they warn
// only on a differing normlab version; beside runs with a known commit they do
// warn, since nothing shows they ran the same code.
import type { RunFacts } from './facts.ts';
import type { Table } from './tables.ts';

export interface Provenance {
  normlab: string;
  /** `<12-hex commit>`, `<commit>-dirty` (uncommitted changes), or `unknown`. */
  git: string;
  node: string;
  /** The backend with its libraries' versions, e.g. `torch libtorch 2.5.1`. */
  backend: string;
  precision: string;
  /** CPU and GPU of the machine, e.g. `Intel Xeon … × 2; no GPU`. */
  host: string;
}

export function provenanceOf(f: RunFacts): Provenance {
  const v = f.source.record.versions;
  return {
    normlab: v.normlab ?? 'unknown', git: v.git ?? 'unknown', node: v.node ?? 'unknown',
    backend: v.backend ?? f.source.record.backend, precision: v.precision ?? 'unknown', host: v.host ?? 'unknown',
  };
}

/** e.g. `0.4.0 @ 1a2b3c4d5e6f`. */
export function codeVersion(f: RunFacts): string {
  const p = provenanceOf(f);
  return `${p.normlab} @ ${p.git}`;
}

/**
 * A warning when `runs` came from different code (different normlab versions or
 * git commits), naming each version with its run count; undefined when they agree.
 */
export function mixedCodeWarning(runs: RunFacts[]): string | undefined {
  const counts = new Map<string, number>();
  for (const f of runs) counts.set(codeVersion(f), (counts.get(codeVersion(f)) ?? 0) + 1);
  if (counts.size < 2) return undefined;
  const list = [...counts].map(([v, n]) => `normlab ${v}: ${n} run${n === 1 ? '' : 's'}`).join('; ');
  return `WARNING: these runs mix code versions (${list}); a difference between them may come from the code, not the strategy.`;
}

/** A caution when some runs were built from a modified working tree: their commit does not pin their code. */
export function dirtyWarning(runs: RunFacts[]): string | undefined {
  const dirty = runs.filter((f) => provenanceOf(f).git.endsWith('-dirty')).length;
  return dirty ? `${dirty} of ${runs.length} runs ran from a working tree with uncommitted changes (git …-dirty): the commit does not pin their code.` : undefined;
}

/** Up to this many run ids are listed in a provenance row; more are counted. */
const LISTED_RUNS = 8;

/** One row per distinct provenance, with the runs that share it. */
export function provenanceTable(facts: RunFacts[]): Table {
  const byKey = new Map<string, { p: Provenance; runs: string[] }>();
  for (const f of facts) {
    const p = provenanceOf(f);
    const key = JSON.stringify(p);
    (byKey.get(key) ?? byKey.set(key, { p, runs: [] }).get(key)!).runs.push(f.id);
  }
  const notes = [
    'What produced each run, as recorded at its start; "unknown": not recorded (runs from before normlab recorded it).',
    mixedCodeWarning(facts), dirtyWarning(facts),
  ].filter(Boolean);
  return {
    id: 'provenance',
    title: 'Provenance',
    note: notes.join(' '),
    columns: ['normlab', 'git', 'backend', 'precision', 'host', 'node', 'runs', 'which'],
    rows: [...byKey.values()].map(({ p, runs }) => [
      p.normlab, p.git, p.backend, p.precision, p.host, p.node, runs.length,
      byKey.size === 1 ? 'all' : runs.length > LISTED_RUNS ? `${runs.slice(0, LISTED_RUNS).join(', ')}, …` : runs.join(', '),
    ]),
  };
}
