// Issue 18: concurrent trainers, a lost or damaged database, a full disk, forged
// checkpoints, signals at start-up and dead sweep workers each end in one clear
// paragraph with the documented exit code, and nothing passes as complete that is not.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { pathUnder } from '../src/config/names.ts';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.ts';

const TRAIN = { steps: 16, checkpoint_every: 4, diag_every: 0, eval_every: 8, eval_batches: 1 };

const noTrace = (text: string) => assert.doesNotMatch(text, /\n\s+at /, 'one paragraph, no stack trace');

/** `normlab runs`' status cell of the one run under dir/runs. */
function listedStatus(dir: string): string {
  const r = runCli(['runs', '--runs-dir', join(dir, 'runs')]);
  assert.equal(r.code, 0, r.stderr);
  const [header, row] = r.stdout.split('\n');
  return row!.slice(header!.indexOf('status')).split(/\s+/)[0]!;
}

function exited(child: ReturnType<typeof startCli>): Promise<number | null> {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

test('a path outside its root is refused, whatever the name', () => {
  assert.equal(pathUnder('/r/runs', 'tiny-abc'), '/r/runs/tiny-abc');
  for (const name of ['../x', '/etc', '..', '.', 'a/../../b']) assert.throws(() => pathUnder('/r/runs', name), /refusing to write outside \/r\/runs/);
});

test('two `normlab train` of one config: the second says who trains it and exits 1; once that process is gone the run shows interrupted and resumes', async () => {
  const dir = tempDir();
  const config = writeConfig(dir, { train: { ...TRAIN, steps: 5000 } });
  const first = startCli(['train', config, '--quiet', '--backend', 'wasm']);
  const firstExit = exited(first);
  try {
    const claimed = () => existsSync(join(dir, 'runs')) && readdirSync(join(dir, 'runs')).some((n) => existsSync(join(dir, 'runs', n, 'claims', 'claim-1.json')));
    for (let i = 0; i < 600 && !claimed(); i++) await sleep(100);
    const second = runCli(['train', config, '--quiet', '--backend', 'wasm']);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`run tiny-\\w+ is being trained by process ${first.pid} on .*nothing was done`));
    noTrace(second.stderr);
    assert.equal(listedStatus(dir), 'running');
  } finally {
    first.kill('SIGKILL');
    await firstExit;
  }
  assert.equal(listedStatus(dir), 'interrupted', 'a run whose process is gone reads as interrupted in normlab runs');
  const resumed = runCli(['train', config, '--backend', 'wasm'], undefined, { NORMLAB_FAULT: 'kill:optimizer-step:1' });
  assert.equal(resumed.code, null, 'the dead process\'s claim was taken over (this one got as far as a step)');
});

test('SQLite failing with a full disk: one paragraph naming the database, exit 1, and the run reads as interrupted, not running', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { train: TRAIN });
  const r = runCli(['train', config, '--quiet', '--backend', 'wasm'], undefined, { NORMLAB_FAULT: 'sqlitefull:store-write:3' });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /could not write .*normlab\.sqlite: database or disk is full \(SQLITE_FULL\).*rerun to resume/);
  noTrace(r.stderr);
  assert.equal(listedStatus(dir), 'interrupted');
  const resumed = runCli(['train', config, '--quiet', '--backend', 'wasm']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(listedStatus(dir), 'finished');
});

test('a deleted or incomplete database does not let a resumed run pass as complete: refused, naming the gap and --restart', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { train: TRAIN });
  const args = ['train', config, '--quiet', '--backend', 'wasm'];
  assert.equal(runCli(args, undefined, { NORMLAB_FAULT: 'kill:optimizer-step:10' }).code, null);
  const db = join(dir, 'runs', 'normlab.sqlite');
  // Incomplete: rows after step 4 lost (an older copy of the file put back).
  const handle = new Database(db);
  const tables = (handle.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'runs' AND sql LIKE '%step%'").all() as { name: string }[]).map((t) => t.name);
  for (const table of tables) handle.prepare(`DELETE FROM ${table} WHERE step > 4`).run();
  handle.close();
  const incomplete = runCli(args);
  assert.equal(incomplete.code, 2, incomplete.stderr);
  assert.match(incomplete.stderr, /checkpoints reach step 8 .* holds train\/loss for only 4 of its 8 logged steps.*nothing was done.*--restart/);
  noTrace(incomplete.stderr);
  // Deleted.
  for (const suffix of ['', '-wal', '-shm']) rmSync(db + suffix, { force: true });
  const deleted = runCli(args);
  assert.equal(deleted.code, 2, deleted.stderr);
  assert.match(deleted.stderr, /checkpoints reach step 8 .*holds no record of it/);
  const restarted = runCli([...args, '--restart']);
  assert.equal(restarted.code, 0, restarted.stderr);
  const check = new Database(db, { readonly: true });
  const losses = check.prepare("SELECT count(*) AS n FROM scalars WHERE name = 'train/loss'").get() as { n: number };
  check.close();
  assert.equal(losses.n, 16, 'every step recorded');
});

test('a garbage, truncated or empty normlab.sqlite: a clear error naming it, `normlab db check` and `db repair` as the way out', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { train: { ...TRAIN, steps: 8 } });
  const args = ['train', config, '--quiet', '--backend', 'wasm'];
  const db = join(dir, 'runs', 'normlab.sqlite');
  mkdirSync(join(dir, 'runs'));
  writeFileSync(db, '');
  assert.equal(runCli(args).code, 0, 'an empty file is an empty database');
  assert.equal(runCli(['db', 'check', db]).code, 0);
  truncateSync(db, 6000);
  for (const damage of ['truncated', 'garbage'] as const) {
    if (damage === 'garbage') writeFileSync(db, 'not a database at all\n'.repeat(100));
    const r = runCli(args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`${db}.*${damage === 'garbage' ? 'is not an SQLite database' : 'is truncated'}.*normlab db check.*normlab db repair`));
    noTrace(r.stderr);
    const check = runCli(['db', 'check', db]);
    assert.equal(check.code, 1, check.stdout);
    assert.match(check.stdout, /is damaged: `normlab db repair/);
  }
  const repair = runCli(['db', 'repair', db]);
  assert.equal(repair.code, 0, repair.stderr);
  assert.match(repair.stdout, /moved the damaged file to .*normlab\.sqlite\.damaged-/);
  assert.match(repair.stdout, /nothing in it could be read/);
  assert.equal(existsSync(db), false, 'the next run starts a new file');
  // The run's checkpoints outlived its metrics: refused on resume, trained again with --restart.
  assert.equal(runCli(args).code, 2);
  assert.equal(runCli([...args, '--restart']).code, 0);
});

test('a forged checkpoint (whole, checksums right) written for another config: exit 2 naming it, no stack trace', () => {
  const dir = tempDir();
  const a = writeConfig(dir, { train: { ...TRAIN, seed: 0 } }, 'a.yaml');
  const b = writeConfig(dir, { train: { ...TRAIN, seed: 1 } }, 'b.yaml');
  for (const config of [a, b]) assert.equal(runCli(['train', config, '--quiet', '--backend', 'wasm'], undefined, { NORMLAB_FAULT: 'kill:optimizer-step:10' }).code, null);
  const folderOf = (seed: number) => readdirSync(join(dir, 'runs')).map((n) => join(dir, 'runs', n))
    .find((f) => existsSync(join(f, 'run.json')) && JSON.parse(readFileSync(join(f, 'run.json'), 'utf8')).config.train.seed === seed)!;
  rmSync(join(folderOf(1), 'checkpoints'), { recursive: true });
  cpSync(join(folderOf(0), 'checkpoints'), join(folderOf(1), 'checkpoints'), { recursive: true });
  const forged = runCli(['train', b, '--quiet', '--backend', 'wasm']);
  assert.equal(forged.code, 2, forged.stderr);
  assert.match(forged.stderr, /step-00000008: checkpoint was written for config \w+, not \w+/);
  noTrace(forged.stderr);
});

test('a full disk while preparing data: one paragraph naming the dataset, exit 1, nothing left behind', () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'texts'));
  for (let i = 0; i < 4; i++) writeFileSync(join(dir, 'texts', `d${i}.txt`), 'the quick brown fox jumps over the lazy dog. '.repeat(200));
  const r = runCli(['data', 'prepare', join(dir, 'texts'), '--tokenizer', 'byte', '--out', join(dir, 'ds'), '--quiet'], undefined, { NORMLAB_FAULT: 'enospc:data-write:1' });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /ds: could not write the dataset \(ENOSPC: no space left on device.*nothing was kept/);
  noTrace(r.stderr);
  assert.deepEqual(readdirSync(dir), ['texts'], 'no dataset and no partial folder');
});

test('SIGTERM during start-up exits 130, as documented', async () => {
  const dir = tempDir();
  const child = startCli(['train', writeConfig(dir), '--quiet', '--backend', 'wasm']);
  const code = exited(child);
  await sleep(1000);
  child.kill('SIGTERM');
  assert.equal(await code, 130);
});

test('a run diverging before its first checkpoint does not claim one is kept', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { model: { norm: 'post', n_layers: 8 }, train: { steps: 30, lr: 10, warmup_steps: 0, grad_clip: 0, checkpoint_every: 100 } });
  const r = runCli(['train', config, '--backend', 'wasm']);
  assert.equal(r.code, 3, r.stderr);
  assert.doesNotMatch(r.stderr, /last good checkpoint is kept/);
  assert.match(r.stderr, /diverged: .*; it had written no checkpoint yet/);
});

test('a sweep whose worker died says so', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'base.yaml'), `name: base\nmodel: { preset: nano, n_layers: 2 }\ntrain: { steps: 6, batch_size: 2, seq_len: 16, eval_every: 6, eval_batches: 1 }\noutput: { runs_dir: ${join(dir, 'runs')} }\n`);
  writeFileSync(join(dir, 's.yaml'), 'name: dies\nbase: base.yaml\nmethod: grid\nparameters: { train.seed: { values: [0] } }\n');
  const r = runCli(['sweep', join(dir, 's.yaml'), '--backend', 'wasm'], undefined, { NORMLAB_FAULT: 'kill:optimizer-step:2' });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /worker w1 died \(killed by SIGKILL\); the run it held is interrupted/);
  assert.match(r.stdout, /interrupted/);
});
