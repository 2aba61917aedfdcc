import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError } from '../src/config/load.ts';
import { readClaim, releaseClaim, touchClaim, tryClaim, type ClaimOwner } from '../src/sweep/claims.ts';
import { detectGpus, workerEnv } from '../src/sweep/launch.ts';
import { expandSweep, formatOverrides } from '../src/sweep/plan.ts';
import { loadSweep } from '../src/sweep/sweepfile.ts';
import { BIN, ROOT, runCli, tempDir } from './helpers/cli.ts';

/** A tiny base config and a sweep over it, both in `dir`; runs go to dir/runs. */
function writeSweep(dir: string, sweep: object, train: object = {}): string {
  writeFileSync(join(dir, 'base.yaml'), stringify({
    name: 'base',
    model: { preset: 'nano', norm: 'pre' },
    train: {
      steps: 10, batch_size: 2, seq_len: 16, lr: 3e-3, warmup_steps: 2,
      eval_every: 5, eval_batches: 2, diag_every: 5, checkpoint_every: 5, ...train,
    },
    data: { corpus: 'brown', tokenizer: 'byte' },
    output: { runs_dir: join(dir, 'runs') },
  }));
  const file = join(dir, 'sweep.yaml');
  writeFileSync(file, stringify({ name: 'study', base: 'base.yaml', method: 'grid', ...sweep }));
  return file;
}

const grid = (parameters: object, extra: object = {}) => ({ method: 'grid', parameters, ...extra });

function sweepError(sweep: object): ConfigError {
  const dir = tempDir();
  const file = writeSweep(dir, sweep);
  try {
    expandSweep(loadSweep(file));
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, /sweep\.yaml/, 'the error names the file');
    return e;
  }
  assert.fail('expected a ConfigError');
}

test('grid search is the product of the values, the first parameter varying slowest, cut at run_cap', () => {
  const dir = tempDir();
  const plan = expandSweep(loadSweep(writeSweep(dir, grid({
    'train.seed': { values: [0, 1] },
    'model.norm': { values: ['pre', 'post', 'deepnorm'] },
    'train.lr': { value: 1e-3 },
  }))));
  assert.deepEqual(plan.runs.map((r) => formatOverrides(r.overrides)), [
    'train.seed=0 model.norm=pre train.lr=0.001', 'train.seed=0 model.norm=post train.lr=0.001', 'train.seed=0 model.norm=deepnorm train.lr=0.001',
    'train.seed=1 model.norm=pre train.lr=0.001', 'train.seed=1 model.norm=post train.lr=0.001', 'train.seed=1 model.norm=deepnorm train.lr=0.001',
  ]);
  assert.deepEqual(plan.runs.map((r) => [r.config.train.seed, r.config.model.norm, r.config.train.lr]), [
    [0, 'pre', 1e-3], [0, 'post', 1e-3], [0, 'deepnorm', 1e-3], [1, 'pre', 1e-3], [1, 'post', 1e-3], [1, 'deepnorm', 1e-3],
  ]);
  assert.equal(new Set(plan.runs.map((r) => r.hash)).size, 6, 'every run has its own identity');
  for (const run of plan.runs) {
    assert.equal(run.id, `study-${run.hash.slice(0, 10)}`);
    assert.equal(run.config.output.db, join(dir, 'runs', run.id, 'run.sqlite'), 'each run writes its own database');
  }
  const capped = expandSweep(loadSweep(writeSweep(tempDir(), grid({ 'train.seed': { values: [0, 1, 2] } }, { run_cap: 2 }))));
  assert.deepEqual(capped.runs.map((r) => r.config.train.seed), [0, 1]);
});

test('combinations that resolve to the same config are planned once', () => {
  // mix_alpha is hashed, but seeds 0 and 0 are the same run.
  const plan = expandSweep(loadSweep(writeSweep(tempDir(), grid({ 'train.seed': { values: [0, 0, 1] } }))));
  assert.equal(plan.runs.length, 2);
  assert.equal(plan.duplicates, 1);
});

test('random search draws the same runs every time, each value inside its distribution', () => {
  const sweep = {
    method: 'random', run_cap: 40, seed: 7,
    parameters: {
      'train.lr': { distribution: 'log_uniform_values', min: 1e-4, max: 1e-2 },
      'train.beta1': { distribution: 'uniform', min: 0.8, max: 0.95 },
      'train.warmup_steps': { distribution: 'int_uniform', min: 1, max: 3 },
      'model.norm': { distribution: 'categorical', values: ['pre', 'post'] },
    },
  };
  const a = expandSweep(loadSweep(writeSweep(tempDir(), sweep)));
  const b = expandSweep(loadSweep(writeSweep(tempDir(), sweep)));
  assert.deepEqual(a.runs.map((r) => r.hash), b.runs.map((r) => r.hash));
  assert.equal(a.runs.length, 40);
  const lrs = a.runs.map((r) => r.config.train.lr);
  assert.ok(lrs.every((v) => v >= 1e-4 && v <= 1e-2));
  assert.ok(lrs.some((v) => v < 1e-3) && lrs.some((v) => v > 1e-3), 'log-uniform covers both decades');
  assert.ok(a.runs.every((r) => r.config.train.beta1 >= 0.8 && r.config.train.beta1 <= 0.95));
  assert.deepEqual([...new Set(a.runs.map((r) => r.config.train.warmup_steps))].sort(), [1, 2, 3]);
  assert.deepEqual([...new Set(a.runs.map((r) => r.config.model.norm))].sort(), ['post', 'pre']);
  const other = expandSweep(loadSweep(writeSweep(tempDir(), { ...sweep, seed: 8 })));
  assert.notDeepEqual(other.runs.map((r) => r.hash), a.runs.map((r) => r.hash));
});

test('a bundle sets several keys together', () => {
  const plan = expandSweep(loadSweep(writeSweep(tempDir(), grid({
    size: { values: [{ 'model.n_layers': 2, 'train.steps': 10 }, { 'model.n_layers': 3, 'train.steps': 20 }] },
  }))));
  assert.deepEqual(plan.runs.map((r) => [r.config.model.n_layers, r.config.train.steps]), [[2, 10], [3, 20]]);
});

test('sweep file errors name the file and the key, and say what was expected', () => {
  assert.match(sweepError(grid({ 'train.stpes': { values: [1] } })).message, /parameters\.train\.stpes: train\.stpes is not a config key \(expected one of .*steps/);
  assert.match(sweepError(grid({ 'train.lr': { distribution: 'uniform', min: 0.1, max: 0.2 } })).message, /parameters\.train\.lr: grid search needs value or values/);
  assert.match(sweepError({ method: 'random', parameters: { 'train.lr': { values: [1] } } }).message, /run_cap: random search needs run_cap/);
  assert.match(sweepError(grid({ 'train.lr': { values: [1] } }, { program: 'train.py' })).message, /program: unknown key \(expected one of .*parameters/);
  assert.match(sweepError(grid({ 'train.lr': { distribution: 'log_uniform_values', min: 0, max: 1 } }, { method: 'random', run_cap: 1 })).message, /needs min > 0/);
  assert.match(sweepError(grid({ 'output.runs_dir': { value: 'x' } })).message, /parameters\.output\.runs_dir: output is set by the sweep/);
  assert.match(sweepError(grid({ 'train.steps': { values: [0] } })).message, /run 1: train\.steps=0\).*train\.steps: expected a number ≥ 1/);
  assert.match(sweepError(grid({ size: { values: [3] } })).message, /parameters\.size\.values\[0\]: .*bundle/);
  assert.match(sweepError(grid({ 'train.lr': { values: [1] } }, { metric: { name: 'val/acc', goal: 'minimize' } })).message, /metric\.name: expected one of val\/ppl/);
});

const owner = (worker: string, pid = process.pid, host = hostname()): ClaimOwner => ({ worker, host, pid });

test('a claim is held by one worker until released, and its holder can refresh it', () => {
  const run = join(tempDir(), 'run');
  const a = tryClaim(run, owner('a'), 60_000);
  assert.ok(a);
  assert.equal(tryClaim(run, owner('b'), 60_000), null, 'a live claim cannot be taken');
  assert.equal(touchClaim(a), true);
  releaseClaim(a);
  assert.equal(readClaim(run, 60_000), null);
  assert.ok(tryClaim(run, owner('b'), 60_000), 'a released run can be claimed');
});

test('a stale heartbeat or a dead owner on this host is taken over, and the old holder learns it lost', () => {
  const run = join(tempDir(), 'run');
  const old = tryClaim(run, owner('a', process.pid, 'elsewhere'), 60_000)!;
  const past = new Date(Date.now() - 120_000);
  utimesSync(old.file, past, past);
  assert.equal(readClaim(run, 60_000)!.stale, true);
  const taken = tryClaim(run, owner('b'), 60_000);
  assert.ok(taken);
  assert.equal(taken.generation, old.generation + 1);
  assert.equal(touchClaim(old), false, 'the superseded holder must stop');
  assert.equal(tryClaim(run, owner('c'), 60_000), null, 'the new claim is fresh');

  const run2 = join(tempDir(), 'run');
  // A pid far above pid_max: no such process on this host.
  const dead = tryClaim(run2, owner('a', 2 ** 30), 60_000)!;
  assert.ok(dead);
  assert.equal(readClaim(run2, 60_000)!.stale, true, 'a claim whose process is gone is stale at once');
  assert.ok(tryClaim(run2, owner('b'), 60_000));
});

test('a claim held by a zombie (a killed worker nobody reaped) is stale', { skip: process.platform !== 'linux' }, async () => {
  // sh execs into sleep, which never reaps its exited child: that child stays a zombie.
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
  await sleep(300);
  try {
    const run = join(tempDir(), 'run');
    tryClaim(run, owner('a', zombie), 60_000);
    assert.equal(readClaim(run, 60_000)!.stale, true);
  } finally {
    parent.kill('SIGKILL');
  }
});

test('workers racing for the same runs in separate processes each get a run exactly once', async () => {
  const dir = tempDir();
  const runs = Array.from({ length: 20 }, (_, i) => join(dir, `run${i}`));
  const script = join(dir, 'claimer.ts');
  const claimsUrl = new URL('../src/sweep/claims.ts', import.meta.url).href;
  writeFileSync(script, `
    import { tryClaim } from ${JSON.stringify(claimsUrl)};
    const [worker, ...runs] = process.argv.slice(2);
    const got = runs.filter((r) => tryClaim(r, { worker, host: 'h', pid: process.pid }, 60_000));
    console.log(JSON.stringify(got));
  `);
  const run = promisify(execFile);
  const outputs = await Promise.all(['w1', 'w2', 'w3', 'w4'].map((w) =>
    run(process.execPath, ['--import', 'tsx', script, w, ...runs], { cwd: ROOT })));
  const claimed = outputs.flatMap((o) => JSON.parse(o.stdout) as string[]);
  assert.deepEqual([...claimed].sort(), [...runs].sort(), 'every run claimed once, none twice');
});

test('each worker gets its own GPU, round robin, and CUDA_VISIBLE_DEVICES wins over detection', () => {
  assert.deepEqual(detectGpus({ CUDA_VISIBLE_DEVICES: '2,3' }), ['2', '3']);
  assert.deepEqual(detectGpus({ CUDA_VISIBLE_DEVICES: '' }), []);
  const gpus = ['0', '1'];
  assert.deepEqual([0, 1, 2].map((k) => workerEnv(k, 3, gpus, {}).CUDA_VISIBLE_DEVICES), ['0', '1', '0']);
  assert.equal(workerEnv(0, 3, [], {}).CUDA_VISIBLE_DEVICES, undefined);
});

test('CPU workers share the cores among their torch threads, unless the user set the count', () => {
  assert.deepEqual([0, 1].map((k) => workerEnv(k, 2, [], {}, 8).NORMLAB_TORCH_THREADS), ['4', '4']);
  assert.equal(workerEnv(0, 3, [], {}, 2).NORMLAB_TORCH_THREADS, '1');
  assert.equal(workerEnv(0, 2, [], { NORMLAB_TORCH_THREADS: '3' }, 8).NORMLAB_TORCH_THREADS, '3');
});

/** `[wK] <run> (...) started` lines: which worker started which run. */
function starts(stdout: string): [string, string][] {
  return [...stdout.matchAll(/^\[(w\d+)\] (\S+) \(#\d+\/\d+: .*\) started$/gm)].map((m) => [m[1]!, m[2]!]);
}

const startEvents = (dir: string, id: string) =>
  readFileSync(join(dir, 'runs', id, 'train.log'), 'utf8').split('\n').filter((l) => l.includes('"msg":"start"')).length;

test('--dry-run prints the exact plan; two workers train every run exactly once; the dry-run then shows them finished', () => {
  const dir = tempDir();
  const file = writeSweep(dir, grid({ 'train.seed': { values: [0, 1] }, 'model.norm': { values: ['pre', 'post'] } }));
  const plan = expandSweep(loadSweep(file));
  const dry = runCli(['sweep', file, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  const lines = dry.stdout.trim().split('\n');
  assert.match(lines[0]!, /^sweep study: 4 runs \(grid\)/);
  assert.equal(lines.length, 2 + 4 + 1, 'header, titles, runs, total cost');
  plan.runs.forEach((run, i) => {
    assert.match(lines[2 + i]!, new RegExp(`^#${i + 1}\\s+${run.id}\\s+${run.hash}\\s+pending\\s+0/10\\s+corpus brown \\(byte\\)\\s+\\S+ tokens\\s+[\\d.]+ GPU-h\\s+${formatOverrides(run.overrides)}$`));
  });
  assert.equal(existsSync(join(dir, 'runs')), false, 'a dry run writes nothing');

  const r = runCli(['sweep', file, '--workers', '2']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const started = starts(r.stdout);
  assert.deepEqual(started.map(([, id]) => id).sort(), plan.runs.map((x) => x.id).sort(), 'each run started once');
  assert.deepEqual(new Set(started.map(([w]) => w)), new Set(['w1', 'w2']), 'both workers trained');
  for (const run of plan.runs) assert.equal(startEvents(dir, run.id), 1);
  assert.match(r.stdout, /sweep study: 4 finished/);

  const after = runCli(['sweep', file, '--dry-run']);
  assert.equal(after.stdout.match(/ finished +10\/10 /g)?.length, 4);
  const again = runCli(['sweep', file]);
  assert.equal(again.code, 0);
  assert.deepEqual(starts(again.stdout), [], 'a finished sweep trains nothing');
});

test('a diverged run and a failed run are recorded, the sweep goes on, and the exit code says so', () => {
  const dir = tempDir();
  const file = writeSweep(dir, grid({ 'train.lr': { values: [3e-3, 1e9] }, 'train.seed': { values: [0, 1] } }), { grad_clip: 0 });
  const plan = expandSweep(loadSweep(file));
  // Block one run's database path with a folder, so opening its store fails.
  const blocked = plan.runs.find((r) => r.config.train.lr === 3e-3 && r.config.train.seed === 1)!;
  mkdirSync(join(blocked.config.output.db, 'x'), { recursive: true });
  const r = runCli(['sweep', file]);
  assert.equal(r.code, 1, 'a failed run makes the sweep exit 1');
  const summary = r.stdout.slice(r.stdout.indexOf('sweep study: '));
  for (const run of plan.runs) {
    const state = run === blocked ? 'pending' : run.config.train.lr === 3e-3 ? 'finished' : 'diverged';
    assert.match(summary, new RegExp(`${run.id}\\s+${state}`), `${run.id} is ${state}`);
  }
  assert.match(r.stdout, new RegExp(`${blocked.id} failed: `));
});

test('a sweep killed with SIGKILL (sweep and workers) and started again completes only what was missing', async () => {
  const dir = tempDir();
  const file = writeSweep(dir, grid({ 'train.seed': { values: [0, 1, 2] } }), { steps: 40, checkpoint_every: 5, eval_every: 20 });
  const plan = expandSweep(loadSweep(file));
  // Its own process group, so one kill reaches the sweep and both workers.
  const child = spawn(process.execPath, [BIN, 'sweep', file, '--workers', '2'], { cwd: ROOT, detached: true, stdio: 'ignore' });
  const status = (id: string) => {
    const log = join(dir, 'runs', id, 'train.log');
    if (!existsSync(log)) return 'none';
    const text = readFileSync(log, 'utf8');
    return text.includes('"msg":"end"') ? 'ended' : text.includes('"msg":"checkpoint"') ? 'checkpointed' : 'started';
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    const s = plan.runs.map((r) => status(r.id));
    if (s.includes('ended') && s.includes('checkpointed')) break;
    assert.ok(Date.now() < deadline, `the sweep made no progress: ${s.join(', ')}`);
    await sleep(50);
  }
  process.kill(-child.pid!, 'SIGKILL');
  await sleep(200);
  const before = plan.runs.map((r) => status(r.id));
  const ended = plan.runs.filter((_, i) => before[i] === 'ended').map((r) => r.id);
  const partial = plan.runs.filter((_, i) => before[i] === 'checkpointed').map((r) => r.id);
  assert.ok(ended.length >= 1 && partial.length >= 1);
  const claimsLeft = plan.runs.filter((r) => {
    const claims = join(dir, 'runs', r.id, 'claims');
    return existsSync(claims) && readdirSync(claims).length > 0;
  });
  assert.ok(claimsLeft.length >= 1, 'the killed workers left their claims behind');

  const dry = runCli(['sweep', file, '--dry-run']);
  for (const id of partial) assert.match(dry.stdout, new RegExp(`${id}\\s+\\S+\\s+interrupted`), `a dead worker's run shows as interrupted:\n${dry.stdout}`);
  for (const id of ended) assert.match(dry.stdout, new RegExp(`${id}\\s+\\S+\\s+finished`), 'a run that ended before the kill shows as finished');

  const r = runCli(['sweep', file, '--workers', '2']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const restarted = starts(r.stdout).map(([, id]) => id);
  for (const id of ended) assert.ok(!restarted.includes(id), `${id} had finished and is not trained again`);
  for (const id of partial) {
    assert.ok(restarted.includes(id), `${id} is taken over at once (its worker is gone)`);
    assert.match(r.stdout, new RegExp(`${id} resumes from step [1-9]`), `${id} resumes from its checkpoint`);
  }
  assert.match(r.stdout, /sweep study: 3 finished/);
  for (const id of ended) assert.equal(startEvents(dir, id), 1);
});
