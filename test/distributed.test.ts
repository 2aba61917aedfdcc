// Data parallel over c10d (issue 14 item 3): launcher environments, and 2 Gloo
// ranks on the CPU against one process — same losses and parameters, a killed
// rank that stops the run and a resume that finishes it as if nothing happened.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { AddonUnavailable, loadAddon } from '../src/backend/torch/addon.ts';
import { expandNodelist, LaunchEnvError, rankEnv } from '../src/distributed/launch-env.ts';
import { freePort, rankEnvironment } from '../src/distributed/spawn-ranks.ts';
import { renderScript } from '../src/slurm/script.ts';
import { expandSweep, writePlan } from '../src/sweep/plan.ts';
import { loadSweep } from '../src/sweep/sweepfile.ts';
import { readSafetensors } from '../src/model/safetensors.ts';
import { runCli, startCli, tempDir } from './helpers/cli.ts';

const gloo = (() => {
  try {
    return loadAddon().c10dBackends().includes('gloo');
  } catch (e) {
    if (e instanceof AddonUnavailable) return false;
    throw e;
  }
})();
const skip = !gloo && 'the torch addon is not built with c10d Gloo here (libgloo-dev)';

test('torchrun\'s environment names the rank, the world and the master', () => {
  assert.equal(rankEnv({}), undefined, 'no launcher: one process');
  assert.equal(rankEnv({ RANK: '0', WORLD_SIZE: '1' }), undefined, 'a world of one is one process');
  assert.deepEqual(rankEnv({ RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', MASTER_ADDR: 'node7', MASTER_PORT: '29600' }), {
    rank: 3, worldSize: 8, localRank: 1, masterAddr: 'node7', masterPort: 29600, launcher: 'torchrun',
  });
  assert.deepEqual(rankEnv({ RANK: '1', WORLD_SIZE: '2' }), {
    rank: 1, worldSize: 2, localRank: 1, masterAddr: '127.0.0.1', masterPort: 29500, launcher: 'torchrun',
  });
  assert.throws(() => rankEnv({ RANK: '2', WORLD_SIZE: '2' }), /RANK=2 is not below WORLD_SIZE=2/);
  assert.throws(() => rankEnv({ RANK: 'x', WORLD_SIZE: '2' }), (e) => e instanceof LaunchEnvError && /RANK=x/.test(e.message));
  assert.throws(() => rankEnv({ RANK: '0' }), /WORLD_SIZE=\(unset\)/);
  assert.throws(() => rankEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '70000' }), /MASTER_PORT=70000/);
  // torchrun wins over Slurm when both are set (torchrun started inside an allocation).
  assert.equal(rankEnv({ RANK: '1', WORLD_SIZE: '4', SLURM_PROCID: '0', SLURM_STEP_ID: '0', SLURM_NTASKS: '2' })!.launcher, 'torchrun');
});

test('Slurm\'s environment inside srun: the first node of the list is the master, one port per job', () => {
  const env = { SLURM_STEP_ID: '0', SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_JOB_NODELIST: 'gpu[03-04,07],cpu1', SLURM_JOB_ID: '123456' };
  assert.deepEqual(rankEnv(env), { rank: 5, worldSize: 8, localRank: 1, masterAddr: 'gpu03', masterPort: 20000 + (123456 % 40000), launcher: 'slurm' });
  assert.equal(rankEnv({ ...env, MASTER_ADDR: 'head', MASTER_PORT: '1234' })!.masterAddr, 'head');
  assert.equal(rankEnv({ ...env, MASTER_PORT: '1234' })!.masterPort, 1234);
  assert.equal(rankEnv({ ...env, SLURM_STEP_NUM_TASKS: '6' })!.worldSize, 6, 'the step\'s task count over the job\'s');
  const { SLURM_STEP_ID: _, ...batchScript } = env;
  assert.equal(rankEnv(batchScript), undefined, 'the batch script around srun is not a rank');
  assert.equal(rankEnv({ ...env, SLURM_PROCID: '0', SLURM_NTASKS: '1' }), undefined, 'one task is one process');
  assert.throws(() => rankEnv({ ...env, SLURM_PROCID: '8' }), /SLURM_PROCID=8 is not below SLURM_NTASKS=8/);
});

test('Slurm node lists expand like scontrol show hostnames', () => {
  assert.deepEqual(expandNodelist('node1'), ['node1']);
  assert.deepEqual(expandNodelist('gpu[01-04,07]'), ['gpu01', 'gpu02', 'gpu03', 'gpu04', 'gpu07']);
  assert.deepEqual(expandNodelist('a[8-10],b,c[1-2]-ib'), ['a8', 'a9', 'a10', 'b', 'c1-ib', 'c2-ib']);
  assert.deepEqual(expandNodelist('r[1-2]n[01-02]'), ['r1n01', 'r1n02', 'r2n01', 'r2n02']);
  assert.throws(() => expandNodelist('gpu[01-04'), /unbalanced brackets/);
  assert.throws(() => expandNodelist('gpu[a-b]'), /'a-b' is not a number or a range/);
  assert.throws(() => expandNodelist('gpu[5-3]'), /range 5-3 is empty/);
});

test('--nproc-per-node gives each rank torchrun\'s variables and its share of the cores', () => {
  const env = rankEnvironment(1, 2, 41234, { PATH: '/bin' }, 2);
  assert.deepEqual(rankEnv(env), { rank: 1, worldSize: 2, localRank: 1, masterAddr: '127.0.0.1', masterPort: 41234, launcher: 'torchrun' });
  assert.equal(env.NORMLAB_TORCH_THREADS, '1');
  assert.equal(rankEnvironment(0, 2, 1, { NORMLAB_TORCH_THREADS: '3' }, 2).NORMLAB_TORCH_THREADS, '3', 'the user\'s setting wins');
});

// Short documents of uneven length under truncate batching: each batch has padding, unevenly
// split between the ranks, so only token weighting (not a mean of the ranks' means) agrees.
function writeRun(dir: string, train: object = {}): string {
  const docs = join(dir, 'docs');
  mkdirSync(docs, { recursive: true });
  for (let i = 0; i < 60; i++) writeFileSync(join(docs, `d${String(i).padStart(2, '0')}.txt`), 'the quick brown fox '.repeat(1 + (i * 7) % 5).slice(0, 6 + (i * 13) % 40));
  const config = {
    name: 'dp',
    model: { preset: 'nano', n_layers: 2 },
    train: { steps: 8, batch_size: 4, seq_len: 32, lr: 3e-3, warmup_steps: 2, eval_every: 4, eval_batches: 2, diag_every: 2, checkpoint_every: 2, log_every: 1, analyze_every: 4, ...train },
    data: { source: docs, tokenizer: 'byte', batching: 'truncate', val_fraction: 0.2 },
    output: { runs_dir: join(dir, 'runs'), tensorboard: true },
  };
  writeFileSync(join(dir, 'config.yaml'), stringify(config));
  return join(dir, 'config.yaml');
}

function losses(dir: string): { name: string; step: number; value: number }[] {
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  try {
    return db.prepare("SELECT name, step, value FROM scalars WHERE name IN ('train/loss', 'val/loss', 'train/grad_norm') ORDER BY name, step").all() as never;
  } finally {
    db.close();
  }
}

function lastParams(dir: string): Map<string, Float32Array> {
  const runs = join(dir, 'runs');
  const run = join(runs, readdirSync(runs).find((n) => n.startsWith('dp-'))!, 'checkpoints');
  const last = readdirSync(run).sort().at(-1)!;
  return new Map([...readSafetensors(join(run, last, 'model.safetensors')).tensors].map(([k, v]) => [k, v.data]));
}

function assertClose(actual: number, expected: number, what: string, tolerance = 2e-5): void {
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

const TWO_RANKS = ['--backend', 'torch', '--nproc-per-node', '2', '--quiet'];
// The ranks also accumulate over micro-batches (2 of 1 row each), against one process taking its batch whole.
const RANK_TRAIN = { micro_batch_size: 1 };
const FAST_TIMEOUT = { NORMLAB_DIST_TIMEOUT: '20' };

let twoRankReference: string | undefined;

test('2 Gloo ranks (accumulating micro-batches) train as one process with the same global batch: losses and parameters agree to float32 tolerance', { skip }, () => {
  const single = tempDir();
  const r1 = runCli(['train', writeRun(single), '--backend', 'torch', '--quiet']);
  assert.equal(r1.code, 0, r1.stderr);
  const parallel = tempDir();
  const r2 = runCli(['train', writeRun(parallel, RANK_TRAIN), ...TWO_RANKS], undefined, FAST_TIMEOUT);
  assert.equal(r2.code, 0, r2.stderr);
  twoRankReference = parallel;

  const [a, b] = [losses(single), losses(parallel)];
  assert.equal(b.length, a.length, 'every step logged once, by rank 0 alone');
  assert.ok(a.length >= 8 * 2 + 2);
  a.forEach((row, i) => assertClose(b[i]!.value, row.value, `${row.name} at step ${row.step}`));
  const [pa, pb] = [lastParams(single), lastParams(parallel)];
  assert.deepEqual([...pb.keys()], [...pa.keys()]);
  for (const [key, values] of pa) {
    const other = pb.get(key)!;
    let worst = 0;
    values.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - other[i]!)); });
    // AdamW divides by sqrt(v): where a gradient is near zero, a rounding-level difference in it
    // moves the update by a little; 1% of one step's size (lr) bounds that.
    assert.ok(worst < 0.01 * 3e-3, `${key}: largest difference ${worst}`);
  }
  const db = new Database(join(parallel, 'runs', 'normlab.sqlite'), { readonly: true });
  const versions = JSON.parse((db.prepare('SELECT versions_json FROM runs').get() as { versions_json: string }).versions_json);
  db.close();
  assert.equal(versions.ranks, '2 (data parallel)', 'the run records its ranks');
  // Only rank 0 wrote: one run, and as many TensorBoard event files as one process writes.
  const runs = readdirSync(join(parallel, 'runs')).filter((n) => n.startsWith('dp-'));
  assert.equal(runs.length, 1);
  const files = (d: string) => readdirSync(join(d, 'runs'), { recursive: true }).map(String).filter((f) => !f.includes('.cache')).map((f) => f.replace(/^dp-\w+/, 'dp').replace(/\d{10,}\.\S+/, 'N')).sort();
  assert.deepEqual(files(parallel), files(single));
});

function childRank(parent: ChildProcess, rank: number): number {
  const pids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(parent.pid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter(Boolean);
  const pid = pids.find((p) => readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`));
  assert.ok(pid, `rank ${rank} among ${pids}`);
  return pid;
}

test('kill -9 of one rank stops the run within the timeout with a clear error; the resumed run finishes with the uninterrupted losses', { skip }, async () => {
  assert.ok(twoRankReference, 'the 2-rank reference run of the test above');
  const dir = tempDir();
  const config = writeRun(dir, RANK_TRAIN);
  const run = startCli(['train', config, ...TWO_RANKS], undefined, FAST_TIMEOUT);
  let stderr = '';
  run.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => run.on('exit', (code) => resolve(code)));
  const runs = join(dir, 'runs');
  const checkpointed = () => existsSync(runs) && readdirSync(runs).some((n) => n.startsWith('dp-') && existsSync(join(runs, n, 'checkpoints', 'step-00000002')));
  for (let i = 0; i < 600 && !checkpointed(); i++) await sleep(50);
  assert.ok(checkpointed(), `a first checkpoint; stderr: ${stderr}`);
  process.kill(childRank(run, 1), 'SIGKILL');
  const killedAt = performance.now();
  const code = await exited;
  const seconds = (performance.now() - killedAt) / 1000;
  assert.equal(code, 1);
  assert.ok(seconds < 20, `stopped after ${seconds.toFixed(1)} s`);
  assert.match(stderr, /rank 1 was killed by SIGKILL/);
  assert.match(stderr, /rank 0 of 2 \(gloo\): all-reduce failed: another rank stopped/);

  const resumed = runCli(['train', config, ...TWO_RANKS], undefined, FAST_TIMEOUT);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(losses(dir), losses(twoRankReference), 'bit-identical losses and gradient norms');
});

test('data parallel refuses, before writing anything, a batch that does not divide among the ranks and a backend without c10d', { skip }, () => {
  const dir = tempDir();
  const config = writeRun(dir, { batch_size: 3 });
  const odd = runCli(['train', config, ...TWO_RANKS]);
  assert.equal(odd.code, 2);
  assert.match(odd.stderr, /train.batch_size 3 does not divide among 2 ranks/);
  const wasm = runCli(['train', writeRun(dir), '--backend', 'wasm', '--nproc-per-node', '2']);
  assert.equal(wasm.code, 2);
  assert.match(wasm.stderr, /data parallel runs over PyTorch's c10d, on the torch backend/);
  assert.equal(existsSync(join(dir, 'runs', 'normlab.sqlite')), false);
});

test('--gpus-per-task N: the sbatch script asks for N tasks of one GPU and srun starts the run as N ranks', () => {
  const dir = tempDir('normlab-ranks-');
  const options = {
    sweep: 'study', source: 'sweep.yaml', runs: [{ index: 1, id: 'study-a' }], planFile: `${dir}/r $(touch PWNED)/plan.json`,
    logDir: '/l', workDir: '/w', normlab: ['node', 'bin/normlab'], taskArgs: ['--backend', 'torch'], sbatchArgs: [],
  };
  const script = renderScript({ ...options, gpusPerTask: 4 });
  assert.match(script, /^#SBATCH --ntasks=4$/m);
  assert.match(script, /^#SBATCH --gpus-per-task=1$/m);
  assert.match(script, /^exec srun --kill-on-bad-exit=1 node bin\/normlab sweep-task '.*\/r \$\(touch PWNED\)\/plan\.json' --run "\$\{RUN\[\$SLURM_ARRAY_TASK_ID\]\}" --backend torch$/m);
  // Run with a stand-in srun that prints the words it gets: each arrives whole, nothing runs.
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'srun'), '#!/bin/sh\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
  const r = spawnSync('bash', ['-c', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, SLURM_ARRAY_TASK_ID: '1' } });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['--kill-on-bad-exit=1', 'node', 'bin/normlab', 'sweep-task', `${dir}/r $(touch PWNED)/plan.json`, '--run', 'study-a', '--backend', 'torch']);
  assert.equal(existsSync(join(dir, 'PWNED')), false);
  const one = renderScript({ ...options, gpusPerTask: 1 });
  assert.match(one, /^#SBATCH --ntasks=1$/m);
  assert.match(one, /^exec node bin\/normlab sweep-task /m, 'one GPU: no srun, as before');
});

test('a Slurm array task started as 2 ranks by srun trains its run once, rank 0 claiming and writing it', { skip }, async () => {
  assert.ok(twoRankReference, 'the 2-rank reference run of the test above');
  const dir = tempDir();
  const base = writeRun(dir, RANK_TRAIN);
  writeFileSync(join(dir, 'sweep.yaml'), stringify({ name: 'study', base, method: 'grid', parameters: { 'train.seed': { values: [0] } } }));
  const plan = expandSweep(loadSweep(join(dir, 'sweep.yaml')));
  const planFile = writePlan(plan);
  const port = await freePort();
  const slurmEnv = (rank: number) => ({
    ...FAST_TIMEOUT, SLURM_STEP_ID: '0', SLURM_PROCID: String(rank), SLURM_NTASKS: '2', SLURM_LOCALID: String(rank),
    SLURM_JOB_NODELIST: 'localhost', SLURM_JOB_ID: '77', SLURM_ARRAY_JOB_ID: '76', SLURM_ARRAY_TASK_ID: '1', MASTER_PORT: String(port),
  });
  const task = (rank: number) => {
    const child = startCli(['sweep-task', planFile, '--run', plan.runs[0]!.id, '--backend', 'torch'], dir, slurmEnv(rank));
    let out = '';
    child.stdout!.on('data', (d) => { out += d; });
    child.stderr!.on('data', (d) => { out += d; });
    return new Promise<{ code: number | null; out: string }>((resolve) => child.on('exit', (code) => resolve({ code, out })));
  };
  const [r0, r1] = await Promise.all([task(0), task(1)]);
  assert.equal(r0.code, 0, r0.out);
  assert.equal(r1.code, 0, r1.out);
  assert.match(r0.out, /slurm-76_1-rank0\] .* finished at step 8/);
  const db = new Database(join(plan.runs[0]!.dir, 'run.sqlite'), { readonly: true });
  try {
    const rows = db.prepare("SELECT name, step, value FROM scalars WHERE name IN ('train/loss', 'val/loss', 'train/grad_norm') ORDER BY name, step").all();
    assert.deepEqual(rows, losses(twoRankReference), 'the same losses as the same run under --nproc-per-node 2');
    assert.equal((db.prepare('SELECT status FROM runs').get() as { status: string }).status, 'finished');
  } finally {
    db.close();
  }
});
