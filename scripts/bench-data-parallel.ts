// Data-parallel benchmark: node --import tsx scripts/bench-data-parallel.ts [config]
//   [--ranks 2] [--steps 12] [--warmup 2] [--device cpu|cuda]
// Trains the config (default configs/bench/small.yaml) on the torch backend as
// one process with one thread, then as N ranks over c10d (`--nproc-per-node N`,
// each rank one thread on a CPU: the cores split between them), and prints the
// median global tokens/s of each after the warm-up steps and their ratio.
// Not a test: on a shared machine the figure moves with the load.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    ranks: { type: 'string', default: '2' },
    steps: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '2' },
    device: { type: 'string', default: 'cpu' },
  },
});
const ROOT = resolve(import.meta.dirname, '..');
const config = resolve(positionals[0] ?? join(ROOT, 'configs', 'bench', 'small.yaml'));
const ranks = Number(values.ranks), steps = Number(values.steps), warmup = Number(values.warmup);

/** Median train/tokens_per_s (global: the whole batch over the step's time) after the warm-up. */
function train(nproc: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'normlab-bench-dp-'));
  try {
    const sets = [`train.steps=${steps}`, 'train.log_every=1', 'train.diag_every=0', 'train.checkpoint_every=0', `train.eval_every=${steps}`, 'train.eval_batches=1', `output.runs_dir=${dir}`];
    const args = [join(ROOT, 'bin', 'normlab'), '--device', values.device!, 'train', config, '--backend', 'torch', '--quiet',
      ...sets.flatMap((s) => ['--set', s]), ...(nproc > 1 ? ['--nproc-per-node', String(nproc)] : [])];
    // One process: one thread. N ranks: --nproc-per-node gives each its share of the cores.
    const env = { ...process.env, ...(nproc === 1 && { NORMLAB_TORCH_THREADS: '1' }) };
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', env, stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`normlab train (${nproc} rank(s)) exited with ${r.status}`);
    const db = new Database(join(dir, 'normlab.sqlite'), { readonly: true });
    const rates = (db.prepare("SELECT value FROM scalars WHERE name = 'train/tokens_per_s' AND step > ? ORDER BY value").all(warmup) as { value: number }[]).map((row) => row.value);
    db.close();
    return rates[Math.floor(rates.length / 2)]!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const one = train(1);
const many = train(ranks);
console.log(`${config} on ${values.device}, ${steps} steps (median after ${warmup}):`);
console.log(`  1 process, 1 thread          ${one.toFixed(0)} tokens/s`);
console.log(`  ${ranks} ranks over c10d         ${many.toFixed(0)} tokens/s`);
console.log(`  speed-up                     ${(many / one).toFixed(2)}x`);
