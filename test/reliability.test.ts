// Issue 7's suite: kill it, corrupt it, fill its disk — nothing is lost and
// every failure says what happened.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { ADDON_PATH } from '../src/backend/torch/addon.ts';
import { Rng } from '../src/data/rng.ts';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.ts';

interface RunState {
  status: string;
  losses: { step: number; value: number }[];
  /** Every metric row but the timing one (tokens/s), in key order: compared bit for bit. */
  metrics: { scalars: unknown[]; layers: unknown[]; params: unknown[] };
  rows: { scalars: number; layers: number; params: number };
}

function readRun(dir: string): RunState {
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  try {
    const count = (table: string) => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return {
      status: (db.prepare('SELECT status FROM runs').get() as { status: string }).status,
      losses: db.prepare("SELECT step, value FROM scalars WHERE name IN ('train/loss', 'val/loss') ORDER BY name, step").all() as { step: number; value: number }[],
      metrics: {
        scalars: db.prepare("SELECT name, step, value FROM scalars WHERE name != 'train/tokens_per_s' ORDER BY name, step").raw().all(),
        layers: db.prepare('SELECT name, step, layer, value FROM layer_metrics ORDER BY name, step, layer').raw().all(),
        params: db.prepare('SELECT name, step, param, value FROM param_metrics ORDER BY name, step, param').raw().all(),
      },
      rows: { scalars: count('scalars'), layers: count('layer_metrics'), params: count('param_metrics') },
    };
  } finally {
    db.close();
  }
}

const RUN_TRAIN = { steps: 48, checkpoint_every: 4, diag_every: 3, eval_every: 8, keep_checkpoints: 2 };

function runFolder(dir: string): string {
  const runs = join(dir, 'runs');
  return join(runs, readdirSync(runs).find((n) => n.startsWith('tiny-'))!);
}

function checkpointEntries(dir: string): string[] {
  const folder = join(runFolder(dir), 'checkpoints');
  return existsSync(folder) ? readdirSync(folder) : [];
}

async function runUntilKilled(args: string[], env: NodeJS.ProcessEnv, afterMs?: number): Promise<number | null> {
  const child = startCli(args, undefined, env);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  if (afterMs !== undefined) {
    await Promise.race([sleep(afterMs), exited]);
    child.kill('SIGKILL');
  }
  return exited;
}

/** Rows that differ between two runs' metrics, for a readable failure. */
function differences(a: RunState['metrics'], b: RunState['metrics']): string[] {
  return (['scalars', 'layers', 'params'] as const).flatMap((table) => {
    const key = (r: unknown[]) => JSON.stringify(r.slice(0, -1));
    const other = new Map(b[table].map((r) => [key(r as unknown[]), (r as unknown[]).at(-1)]));
    return a[table].filter((r) => !Object.is(other.get(key(r as unknown[])), (r as unknown[]).at(-1)))
      .map((r) => `${table} ${JSON.stringify(r)} vs ${String(other.get(key(r as unknown[])))}`);
  });
}

for (const backend of ['wasm', 'torch']) {
  const skip = backend === 'torch' && !existsSync(ADDON_PATH) && 'the torch addon is not built here';
  test(`${backend}: 20 SIGKILLs at random and at the worst moments: every metric row of the resumed run equals the uninterrupted run's, bit for bit`, { skip }, async () => {
    const reference = tempDir();
    const referenceRun = runCli(['train', writeConfig(reference, { train: RUN_TRAIN }), '--quiet', '--backend', backend]);
    assert.equal(referenceRun.code, 0, referenceRun.stderr);
    const expected = readRun(reference);

    const dir = tempDir();
    const config = writeConfig(dir, { train: RUN_TRAIN });
    const args = ['train', config, '--quiet', '--backend', backend];
    // Kills inside a checkpoint write, before its rename, before a metrics flush and mid-step …
    const injected = ['kill:checkpoint-write:1', 'kill:checkpoint-write:3', 'kill:checkpoint-rename:1', 'kill:metrics-flush:2', 'kill:optimizer-step:5', 'kill:checkpoint-write:2', 'kill:metrics-flush:1', 'kill:optimizer-step:2'];
    for (const fault of injected) {
      const code = await runUntilKilled(args, { NORMLAB_FAULT: fault });
      assert.notEqual(code, 0, `${fault} killed the run`);
    }
    // … and at random times, between and during steps.
    const rng = new Rng(20261128);
    for (let i = 0; i < 12; i++) await runUntilKilled(args, {}, 400 + rng.nextFloat() * 2500);

    const final = runCli(args);
    assert.equal(final.code, 0, final.stderr);
    const after = readRun(dir);
    assert.equal(after.status, 'finished');
    assert.deepEqual(after.rows, expected.rows, 'no metric row missing or doubled');
    assert.deepEqual(differences(after.metrics, expected.metrics), [], 'every metric row bit-identical (grad norms, variances, losses, lr)');
    assert.deepEqual(checkpointEntries(dir).filter((n) => !/^step-\d{8}$/.test(n)), [], 'no temporary folder left beside the checkpoints');
  });
}

test('a truncated or bit-flipped checkpoint is named, skipped, and the run resumes from the previous one', async () => {
  const reference = tempDir();
  assert.equal(runCli(['train', writeConfig(reference, { train: RUN_TRAIN }), '--quiet']).code, 0);
  const expected = readRun(reference);

  for (const damage of ['truncate', 'bitflip'] as const) {
    const dir = tempDir();
    const config = writeConfig(dir, { train: RUN_TRAIN });
    await runUntilKilled(['train', config, '--quiet'], { NORMLAB_FAULT: 'kill:optimizer-step:30' });
    const [latest, previous] = checkpointEntries(dir).sort().reverse();
    assert.ok(latest && previous, 'two checkpoints kept');
    const file = join(runFolder(dir), 'checkpoints', latest, 'model.safetensors');
    if (damage === 'truncate') truncateSync(file, 1000);
    else {
      const bytes = readFileSync(file);
      bytes[bytes.length - 5]! ^= 0x10;
      writeFileSync(file, bytes);
    }
    const resumed = runCli(['train', config]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`${latest}/model.safetensors: checksum mismatch.*falling back to the previous checkpoint`));
    assert.match(resumed.stdout, new RegExp(`resuming from step ${Number(previous.slice(5))} `));
    assert.deepEqual(readRun(dir).losses, expected.losses, `${damage}: same losses after the fallback`);
  }
});

test('a full disk while checkpointing fails clearly, keeps the previous checkpoint, and the run resumes', () => {
  const reference = tempDir();
  assert.equal(runCli(['train', writeConfig(reference, { train: RUN_TRAIN }), '--quiet']).code, 0);
  const dir = tempDir();
  const config = writeConfig(dir, { train: RUN_TRAIN });
  const full = runCli(['train', config, '--quiet'], undefined, { NORMLAB_FAULT: 'enospc:checkpoint-write:4' });
  assert.equal(full.code, 1);
  assert.match(full.stderr, /could not write checkpoint .*step-00000008: ENOSPC: no space left on device.*the previous checkpoint .*step-00000004 is intact/);
  assert.doesNotMatch(full.stderr, /\n\s+at /, 'one paragraph, no stack trace');
  assert.deepEqual(checkpointEntries(dir), ['step-00000004'], 'the failed write left nothing behind');
  assert.equal(readRun(dir).status, 'failed');
  const resumed = runCli(['train', config, '--quiet']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(readRun(dir).losses, readRun(reference).losses);
});

test('a diverging run is recorded as diverged with its step and exits 3', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { model: { norm: 'post', n_layers: 8 }, train: { steps: 30, lr: 10, warmup_steps: 0, grad_clip: 0 } });
  const r = runCli(['train', config]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /diverged: loss [\d.]+ exceeds train.diverge_loss 16.64 at step \d+/);
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  const run = db.prepare('SELECT status, diverged_step FROM runs').get() as { status: string; diverged_step: number };
  db.close();
  assert.equal(run.status, 'diverged');
  assert.ok(run.diverged_step >= 1 && run.diverged_step <= 30);
});

test('3 sweep workers, one sweep with a diverging run: every run trained once, all end in a final status', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'base.yaml'), [
    'name: base', 'model: { preset: nano, n_layers: 4, norm: post }',
    'train: { steps: 12, batch_size: 2, seq_len: 16, warmup_steps: 0, grad_clip: 0, eval_every: 6, eval_batches: 1, checkpoint_every: 6 }',
    `output: { runs_dir: ${join(dir, 'runs')} }`, '',
  ].join('\n'));
  writeFileSync(join(dir, 'sweep.yaml'), [
    'name: busy', 'base: base.yaml', 'method: grid',
    'parameters:', '  train.seed: { values: [0, 1, 2] }', '  train.lr: { values: [0.003, 10.0] }', '',
  ].join('\n'));
  const r = runCli(['sweep', join(dir, 'sweep.yaml'), '--workers', '3', '--backend', 'wasm']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, /SQLITE_BUSY/);
  const runs = readdirSync(join(dir, 'runs')).filter((n) => n.startsWith('busy-'));
  assert.equal(runs.length, 6);
  const statuses: Record<string, string> = {};
  for (const run of runs) {
    const starts = readFileSync(join(dir, 'runs', run, 'train.log'), 'utf8').split('\n').filter((l) => l.includes('"msg":"start"'));
    assert.equal(starts.length, 1, `${run} trained exactly once`);
    const db = new Database(join(dir, 'runs', run, 'run.sqlite'), { readonly: true });
    const row = db.prepare('SELECT status, config_json FROM runs').get() as { status: string; config_json: string };
    db.close();
    statuses[`lr=${JSON.parse(row.config_json).train.lr} seed=${JSON.parse(row.config_json).train.seed}`] = row.status;
  }
  assert.deepEqual(statuses, {
    'lr=0.003 seed=0': 'finished', 'lr=0.003 seed=1': 'finished', 'lr=0.003 seed=2': 'finished',
    'lr=10 seed=0': 'diverged', 'lr=10 seed=1': 'diverged', 'lr=10 seed=2': 'diverged',
  });
});

test('a corrupted prepared dataset is refused with the damaged file named', () => {
  const dir = tempDir();
  const ds = join(dir, 'ds');
  mkdirSync(join(dir, 'texts'));
  for (let i = 0; i < 12; i++) writeFileSync(join(dir, 'texts', `doc${i}.txt`), `Document ${i}: the quick brown fox jumps over the lazy dog.\n`.repeat(100));
  const prepared = runCli(['data', 'prepare', join(dir, 'texts'), '--tokenizer', 'byte', '--out', ds, '--val-fraction', '0.3', '--quiet']);
  assert.equal(prepared.code, 0, prepared.stderr);
  const shard = join(ds, readdirSync(ds).find((f) => /^train-\d+\.bin$/.test(f))!);
  const bytes = readFileSync(shard);
  bytes[100]! ^= 0x01;
  writeFileSync(shard, bytes);
  const config = join(dir, 'c.yaml');
  writeFileSync(config, `model: { preset: nano, n_layers: 2 }\ntrain: { steps: 2, batch_size: 1, seq_len: 16 }\ndata: { source: ${ds}, val_fraction: 0.3 }\noutput: { runs_dir: ${join(dir, 'runs')} }\n`);
  const r = runCli(['train', config]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`${shard.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: checksum mismatch`));
  assert.equal(existsSync(join(dir, 'runs')), false, 'nothing written');
});
