import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.ts';

function readDb(dir: string) {
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  try {
    return {
      runs: db.prepare('SELECT id, status, step, backend, versions_json FROM runs').all() as { id: string; status: string; step: number; backend: string; versions_json: string }[],
      losses: db.prepare("SELECT step, value FROM scalars WHERE name = 'train/loss' ORDER BY step").all() as { step: number; value: number }[],
      val: db.prepare("SELECT step, value FROM scalars WHERE name = 'val/loss' ORDER BY step").all() as { step: number; value: number }[],
      scalarRows: (db.prepare('SELECT count(*) AS n FROM scalars').get() as { n: number }).n,
      layerRows: db.prepare('SELECT name, count(*) AS n FROM layer_metrics GROUP BY name ORDER BY name').all() as { name: string; n: number }[],
      paramRows: (db.prepare('SELECT count(*) AS n FROM param_metrics').get() as { n: number }).n,
    };
  } finally {
    db.close();
  }
}

test('a training run stores every step\'s scalars and per-layer diagnostics', () => {
  const dir = tempDir();
  const r = runCli(['train', writeConfig(dir), '--backend', 'wasm']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /backend wasm/);
  const db = readDb(dir);
  assert.equal(db.runs.length, 1);
  assert.deepEqual({ status: db.runs[0]!.status, step: db.runs[0]!.step, backend: db.runs[0]!.backend }, { status: 'finished', step: 30, backend: 'wasm' });
  assert.deepEqual(db.losses.map((l) => l.step), Array.from({ length: 30 }, (_, i) => i + 1));
  assert.ok(db.losses.at(-1)!.value < db.losses[0]!.value - 1, 'loss falls over 30 steps');
  assert.deepEqual(db.val.map((v) => v.step), [10, 20, 30]);
  // Step 1 (at initialization), then diag_every 5 over 30 steps: 7 diagnostic steps × 2 blocks.
  assert.deepEqual(db.layerRows, [{ name: 'grad_norm', n: 14 }, { name: 'output_var', n: 14 }]);
  assert.equal(db.paramRows, 7 * 21, '21 parameters of a 2-block pre model, 7 diagnostic steps');
  // Provenance: the checkout's commit (dirty or not) and the host, beside the versions.
  const versions = JSON.parse(db.runs[0]!.versions_json) as Record<string, string>;
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  assert.match(versions.git!, new RegExp(`^${head.slice(0, 12)}(-dirty)?$`));
  assert.equal(versions.host, `${cpus()[0]!.model.trim()} × ${cpus().length}; no GPU used`);
  assert.match(versions.backend!, /^wasm /);
});

test('a run killed with SIGKILL and resumed ends with the losses of an uninterrupted run', async () => {
  const whole = tempDir();
  assert.equal(runCli(['train', writeConfig(whole), '--quiet']).code, 0);
  const reference = readDb(whole);

  const killed = tempDir();
  const config = writeConfig(killed);
  const child = startCli(['train', config, '--quiet']);
  const checkpoints = () => {
    const runs = join(killed, 'runs');
    const run = existsSync(runs) ? readdirSync(runs).find((n) => n.startsWith('tiny-')) : undefined;
    const dir = run && join(runs, run, 'checkpoints');
    return dir && existsSync(dir) ? readdirSync(dir).filter((n) => /^step-\d+$/.test(n)) : [];
  };
  while (!checkpoints().some((n) => Number(n.slice(5)) >= 10)) await sleep(20);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('exit', resolve));
  const partial = readDb(killed);
  assert.equal(partial.runs[0]!.status, 'running', 'a SIGKILLed run never marked itself ended');
  assert.ok(partial.losses.length < 30);

  const resumed = runCli(['train', config]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /resuming from step \d+/);
  const after = readDb(killed);
  assert.equal(after.runs[0]!.status, 'finished');
  assert.deepEqual(after.losses, reference.losses, 'same steps, bit-identical losses');
  assert.deepEqual(after.val, reference.val);
  assert.equal(after.scalarRows, reference.scalarRows, 'no scalar row missing or doubled');
  assert.deepEqual(after.layerRows, reference.layerRows);
  assert.equal(after.paramRows, reference.paramRows);
});

test('SIGTERM checkpoints, marks the run killed, and --resume finishes it', async () => {
  const dir = tempDir();
  const config = writeConfig(dir, { train: { steps: 150, checkpoint_every: 0 } });
  const child = startCli(['train', config]);
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  while (!/step \d+\/150/.test(out)) await sleep(20);
  child.kill('SIGTERM');
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 130);
  const db = readDb(dir);
  assert.equal(db.runs[0]!.status, 'killed');
  const step = db.runs[0]!.step;
  assert.ok(step > 0 && step < 150);
  const resume = out.match(/normlab train --resume (\S+)/);
  assert.ok(resume, out);
  const refused = runCli(['train', '--resume', resume[1]!, '--set', 'train.steps=1']);
  assert.equal(refused.code, 2, 'a resume takes the run\'s own config; --set is refused');
  const again = runCli(['train', '--resume', resume[1]!]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`resuming from step ${step} `));
  assert.equal(readDb(dir).runs[0]!.status, 'finished');
});
