import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { parseJobComp, parseSacct, parseScontrol, taskIndices } from '../src/slurm/queue.ts';
import { renderScript } from '../src/slurm/script.ts';
import { expandSweep, type Plan } from '../src/sweep/plan.ts';
import { loadSweep } from '../src/sweep/sweepfile.ts';
import { runCli, startCli, tempDir } from './helpers/cli.ts';
import { slurmMissing, startSlurm, type LocalSlurm } from './helpers/slurm.ts';

test('the sbatch script asks for requeue and maps each array index to exactly its run', () => {
  const script = renderScript({
    sweep: 'study', source: 'sweep.yaml', runs: [{ index: 1, id: 'study-a' }, { index: 2, id: 'study-b' }, { index: 4, id: 'study-d' }],
    planFile: '/r/sweeps/study/plan.json', logDir: '/r/sweeps/study/slurm', workDir: '/w',
    normlab: ['echo'], taskArgs: ['--backend', 'wasm'], arrayParallel: 2, time: '1:00:00', sbatchArgs: ['--mem=4G'],
  });
  for (const line of ['--array=1-2,4%2', '--requeue', '--output=/r/sweeps/study/slurm/%A_%a.out', '--chdir=/w', '--time=1:00:00', '--mem=4G']) {
    assert.match(script, new RegExp(`^#SBATCH ${line.replace(/[%.]/g, '\\$&')}$`, 'm'));
  }
  // With `echo` as normlab, running the script shows the command each task would exec.
  const task = (index: number) => spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, SLURM_ARRAY_TASK_ID: String(index) } });
  assert.equal(task(4).stdout.trim(), 'sweep-task /r/sweeps/study/plan.json --run study-d --backend wasm');
  assert.notEqual(task(3).status, 0, 'an index outside the array is an error, not some other run');
});

test('hostile names, paths and flags cannot run code through the sbatch script', () => {
  const dir = tempDir('normlab-evil-');
  const evil = `$(touch ${dir}/PWNED)`;
  const script = renderScript({
    sweep: 'study', source: `sweep ${evil}.yaml`, runs: [{ index: 1, id: `study-${evil}` }, { index: 2, id: "it's-`touch PWNED`" }],
    planFile: `${dir}/r ${evil}/plan.json`, logDir: `${dir}/logs ${evil}`, workDir: `${dir}/w ${evil}`,
    normlab: ['echo'], taskArgs: ['--backend', `wasm;${evil}`], partition: `p${evil}`, sbatchArgs: [`--comment=a ${evil}`],
  });
  for (const index of [1, 2]) {
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', cwd: dir, env: { ...process.env, SLURM_ARRAY_TASK_ID: String(index) } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.split(' --run ')[1]?.split(' --backend')[0], index === 1 ? `study-${evil}` : "it's-`touch PWNED`", 'the run id arrives as one literal word');
  }
  assert.equal(existsSync(join(dir, 'PWNED')), false, 'nothing ran');
  assert.match(script, /^#SBATCH --comment="a \$\(touch .*\)"$/m, 'sbatch reads a value with blanks as one word');
  const line = (over: object) => () => renderScript({
    sweep: 's', source: 's.yaml', runs: [{ index: 1, id: 's-1' }], planFile: '/p', logDir: '/l', workDir: '/w', normlab: ['echo'], taskArgs: [], sbatchArgs: [], ...over,
  });
  assert.throws(line({ sbatchArgs: ['--mem=1G\nrm -rf ~'] }), /--sbatch-arg:.*control character/, 'a newline would start a shell line');
  assert.throws(line({ partition: 'gpu\ntouch PWNED' }), /control character/);
  assert.throws(line({ sbatchArgs: ['mem=1G'] }), /--sbatch-arg: expected an option/);
  assert.throws(line({ runs: [{ index: 1, id: 'a\nb' }] }), /run id/);
});

test('a task\'s state reads the same from scontrol, sacct and the job-completion file', () => {
  assert.deepEqual(taskIndices('3'), [3]);
  assert.deepEqual(taskIndices('2-4,7%2'), [2, 3, 4, 7]);
  const scontrol = parseScontrol([
    'JobId=13 ArrayJobId=12 ArrayTaskId=1 JobName=normlab-study JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=1:0 RunTime=00:00:03',
    'JobId=12 ArrayJobId=12 ArrayTaskId=3-4%2 JobName=normlab-study JobState=PENDING Reason=JobArrayTaskLimit ExitCode=0:0',
    'JobId=14 ArrayJobId=12 ArrayTaskId=2 JobState=CANCELLED Reason=None ExitCode=0:15',
  ].join('\n'));
  assert.deepEqual(scontrol.get('12_1'), { state: 'FAILED', exitCode: 1, signal: 0, reason: 'NonZeroExitCode', source: 'scontrol' });
  assert.deepEqual(scontrol.get('12_2'), { state: 'CANCELLED', exitCode: 0, signal: 15, source: 'scontrol' });
  assert.equal(scontrol.get('12_4')?.state, 'PENDING');
  const sacct = parseSacct('12_1|FAILED|1:0\n12_2|CANCELLED by 0|0:15\n12_[3-4%2]|PENDING|0:0\n');
  assert.deepEqual([...sacct.keys()], ['12_1', '12_2', '12_3', '12_4']);
  assert.deepEqual(sacct.get('12_2'), { state: 'CANCELLED', exitCode: 0, signal: 15, source: 'sacct' });
  const jobcomp = parseJobComp([
    'JobId=13 UserId=root(0) Name=normlab-study JobState=RUNNING ArrayJobId=12 ArrayTaskId=1 DerivedExitCode=0:0 ExitCode=0:0',
    'JobId=13 UserId=root(0) Name=normlab-study JobState=FAILED ArrayJobId=12 ArrayTaskId=1 DerivedExitCode=0:0 ExitCode=1:0',
    'JobId=9 UserId=root(0) Name=other JobState=COMPLETED ArrayJobId=8 ArrayTaskId=1 ExitCode=0:0',
  ].join('\n'), new Set(['12']));
  assert.deepEqual([...jobcomp.entries()], [['12_1', { state: 'FAILED', exitCode: 1, signal: 0, source: 'jobcomp' }]], 'the latest record wins; other jobs are left out');
});

// ---- against a real single-node Slurm (../shared/recipes/slurm-single-node.md) ----

const missing = slurmMissing();
let slurm: LocalSlurm | undefined;

const cli = (args: string[], cwd: string) => runCli(args, cwd, slurm!.env);

/** A sweep over a tiny model (nano, 2 blocks, seq 32, batch 2) in `dir`; runs go to dir/runs. */
function writeSweep(dir: string, parameters: object, train: object = {}): { file: string; plan: Plan } {
  writeFileSync(join(dir, 'base.yaml'), stringify({
    name: 'base',
    model: { preset: 'nano', n_layers: 2, norm: 'pre' },
    train: { steps: 20, batch_size: 2, seq_len: 32, lr: 3e-3, warmup_steps: 4, eval_every: 10, eval_batches: 2, diag_every: 5, checkpoint_every: 5, ...train },
    data: { corpus: 'brown', tokenizer: 'byte' },
    output: { runs_dir: 'runs' },
  }));
  writeFileSync(join(dir, 'sweep.yaml'), stringify({ name: 'study', base: 'base.yaml', method: 'grid', parameters }));
  // runs_dir is relative, as in a user's config: tasks must start where the sweep was submitted.
  return { file: 'sweep.yaml', plan: expandSweep(loadSweep(join(dir, 'sweep.yaml'))) };
}

/** Submits the sweep to Slurm; returns the array job id. */
function submit(dir: string, file: string, ...flags: string[]): string {
  const r = cli(['sweep', file, '--executor', 'slurm', '--backend', 'wasm', '--array-parallel', '2', ...flags], dir);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const job = /as Slurm job (\d+)/.exec(r.stdout)?.[1];
  assert.ok(job, r.stdout);
  return job;
}

async function waitForJob(job: string, timeoutMs = 150_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const q = spawnSync('squeue', ['-h', '-j', job], { encoding: 'utf8', env: { ...process.env, ...slurm!.env } });
    if (q.stdout.trim() === '') return;
    assert.ok(Date.now() < deadline, `job ${job} still queued after ${timeoutMs} ms:\n${q.stdout}`);
    await sleep(500);
  }
}

/** `--status` rows by run id: [normlab status, slurm column]. */
function status(dir: string, file: string): Map<string, string> {
  const r = cli(['sweep', file, '--status'], dir);
  assert.equal(r.code, 0, r.stderr);
  return new Map([...r.stdout.matchAll(/^#\d+\s+(\S+)\s+\S+\s+(\S+)\s+\S+\s+(\d+_\d+ \S+(?: \([^)]*\))?)\s/gm)].map((m) => [m[1]!, `${m[2]} | ${m[3]}`]));
}

function report(dir: string): { title: string; tables: { id: string; rows: Record<string, unknown>[] }[] } {
  const r = cli(['report', '--sweep', 'study', '--format', 'json'], dir);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const reportRuns = (dir: string) => report(dir).tables.find((t) => t.id === 'runs')!.rows;

describe('against a real single-node Slurm', { skip: missing && `no local Slurm: ${missing}` }, () => {
  before(async () => {
    slurm = await startSlurm();
  });
  after(async () => {
    await slurm?.stop();
  });

  test('a 4-run array trains every run; its report equals the report of the same sweep with local workers', { timeout: 240_000 }, async () => {
    const dir = tempDir('normlab-slurm-array-');
    const { file, plan } = writeSweep(dir, { 'train.seed': { values: [0, 1] }, 'model.norm': { values: ['pre', 'post'] } });
    const job = submit(dir, file);
    const script = readFileSync(join(dir, 'runs', 'sweeps', 'study', 'slurm', 'submit-1.sbatch'), 'utf8');
    assert.match(script, /^#SBATCH --array=1-4%2$/m);
    assert.match(cli(['sweep', file, '--executor', 'slurm'], dir).stdout, /nothing to submit/, 'runs queued or running are not submitted twice');

    // Meanwhile the same sweep with two local workers, in a folder of its own.
    const localDir = tempDir('normlab-slurm-local-');
    writeSweep(localDir, { 'train.seed': { values: [0, 1] }, 'model.norm': { values: ['pre', 'post'] } });
    const local = startCli(['sweep', file, '--workers', '2', '--backend', 'wasm'], localDir);
    const localCode = new Promise<number | null>((resolve) => local.on('exit', resolve));
    await waitForJob(job);
    assert.equal(await localCode, 0, 'the local sweep finished');

    const states = status(dir, file);
    for (const run of plan.runs) assert.equal(states.get(run.id), `finished | ${job}_${run.index} completed`);
    const runs = cli(['runs'], dir);
    for (const run of plan.runs) assert.match(runs.stdout, new RegExp(`^${run.id}\\s+study\\s+.*\\bfinished\\s+20/20 .* ${job}_${run.index} completed$`, 'm'));

    const rows = reportRuns(dir);
    assert.deepEqual(rows.map((r) => r.run).sort(), plan.runs.map((r) => r.id).sort(), 'the report shows all four runs');
    assert.ok(rows.every((r) => r.status === 'finished' && typeof r['val loss'] === 'number'));
    assert.deepEqual(report(dir), report(localDir), 'same runs, same losses, same diagnostics');
    assert.match(cli(['sweep', file, '--executor', 'slurm'], dir).stdout, /nothing to submit/);
  });

  test('scancel of one task leaves its run resumable; submitting again trains only it, from its checkpoint', { timeout: 240_000 }, async () => {
    const dir = tempDir('normlab-slurm-cancel-');
    const { file, plan } = writeSweep(dir, { 'train.seed': { values: [0, 1] } }, { steps: 80, eval_every: 40 });
    const [victim, other] = plan.runs as [Plan['runs'][0], Plan['runs'][0]];
    const job = submit(dir, file);
    const log = join(dir, 'runs', victim.id, 'train.log');
    const deadline = Date.now() + 120_000;
    while (!(existsSync(log) && readFileSync(log, 'utf8').includes('"msg":"checkpoint"'))) {
      assert.ok(Date.now() < deadline, 'the task wrote no checkpoint');
      await sleep(100);
    }
    spawnSync('scancel', [`${job}_${victim.index}`], { env: { ...process.env, ...slurm!.env } });
    await waitForJob(job);

    let states = status(dir, file);
    // The task caught SIGTERM, checkpointed its run and exited 130.
    assert.equal(states.get(victim.id), `killed | ${job}_${victim.index} cancelled (exit 130)`);
    assert.equal(states.get(other.id), `finished | ${job}_${other.index} completed`);
    assert.ok(readdirSync(join(dir, 'runs', victim.id, 'checkpoints')).length > 0);

    const again = submit(dir, file);
    assert.match(readFileSync(join(dir, 'runs', 'sweeps', 'study', 'slurm', 'submit-2.sbatch'), 'utf8'), new RegExp(`^#SBATCH --array=${victim.index}%2$`, 'm'));
    await waitForJob(again);
    const out = readFileSync(join(dir, 'runs', 'sweeps', 'study', 'slurm', `${again}_${victim.index}.out`), 'utf8');
    assert.match(out, new RegExp(`${victim.id} resumes from step [1-9]`));
    states = status(dir, file);
    assert.equal(states.get(victim.id), `finished | ${again}_${victim.index} completed`);
    assert.equal(states.get(other.id), `finished | ${job}_${other.index} completed`, 'the finished run was not submitted again');
    assert.deepEqual(reportRuns(dir).map((r) => r.status), ['finished', 'finished']);
  });

  test('a failing run is reported with its task\'s exit code; the other runs finish', { timeout: 240_000 }, async () => {
    const dir = tempDir('normlab-slurm-fail-');
    // The second run's data source does not exist: it fails when its task starts it.
    const { file, plan } = writeSweep(dir, { dataset: { values: [{ 'data.corpus': 'brown' }, { 'data.source': join(dir, 'missing.txt') }] } });
    const [good, bad] = plan.runs as [Plan['runs'][0], Plan['runs'][0]];
    const job = submit(dir, file);
    await waitForJob(job);
    const states = status(dir, file);
    assert.equal(states.get(good.id), `finished | ${job}_${good.index} completed`);
    assert.equal(states.get(bad.id), `failed | ${job}_${bad.index} failed (exit 1)`);
    const runs = cli(['runs'], dir);
    assert.match(runs.stdout, new RegExp(`^${bad.id}\\s+study\\s+.*\\bfailed .* ${job}_${bad.index} failed \\(exit 1\\)$`, 'm'));
    const out = readFileSync(join(dir, 'runs', 'sweeps', 'study', 'slurm', `${job}_${bad.index}.out`), 'utf8');
    assert.match(out, new RegExp(`${bad.id} failed: .*missing\\.txt`));
  });
});
