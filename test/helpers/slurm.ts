// A real single-node Slurm for tests, as ../shared/recipes/slurm-single-node.md
// measured it: Debian's slurm-wlm and munge, munged / slurmctld / slurmd in the
// foreground as our children, stopped by their PIDs (also when a test fails or
// the test process exits), all state in a temp folder.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './cli.ts';

export interface LocalSlurm {
  base: string;
  /** What every client (sbatch, squeue, normlab) needs: SLURM_CONF. */
  env: { SLURM_CONF: string };
  stop(): Promise<void>;
}

/** Why the Slurm tests cannot run here, or undefined when they can. */
export function slurmMissing(): string | undefined {
  if (!existsSync('/usr/sbin/slurmctld') || !existsSync('/usr/sbin/munged')) {
    return 'slurmctld or munged is not installed (apt-get install -y --no-install-recommends slurm-wlm munge)';
  }
  if (process.getuid?.() !== 0) return 'a local Slurm needs root (munged runs as user munge, slurmd as root)';
  return undefined;
}

function check(command: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.error?.message ?? ''}`);
  return r.stdout;
}

function daemon(command: string, args: string[], log: string): ChildProcess {
  const out = openSync(log, 'a');
  return spawn(command, args, { stdio: ['ignore', out, out] });
}

/** Waits for `ready`; fails with the daemons' logs when it times out or a daemon exits. */
async function until(what: string, ready: () => boolean, timeoutMs: number, children: ChildProcess[], logs: string[]): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    const dead = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead || Date.now() > deadline) {
      const tails = logs.filter(existsSync).map((f) => `--- ${f}\n${readFileSync(f, 'utf8').slice(-2000)}`);
      const why = dead ? `${dead.spawnargs.join(' ')} exited (${dead.exitCode ?? dead.signalCode})` : `not ready after ${timeoutMs} ms`;
      throw new Error(`local Slurm: ${what}: ${why}\n${tails.join('\n')}`);
    }
    await sleep(200);
  }
}

/** A port nobody listens on now: a second Slurm (another test run) must not collide with ours on 6817/6818. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** TERM, then KILL if it has not exited after `graceMs`. */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

export async function startSlurm(): Promise<LocalSlurm> {
  const base = tempDir('normlab-slurm-');
  const conf = join(base, 'etc', 'slurm.conf');
  const env = { SLURM_CONF: conf };
  const munge = join(base, 'munge');
  const sock = join(munge, 'run', 'munge.socket.2');
  for (const d of ['etc', 'state/ctld', 'state/d', 'log', 'run', 'munge/run', 'munge/log', 'munge/lib']) mkdirSync(join(base, d), { recursive: true });
  // The temp folder is 0700: munged (user munge) must be able to reach its socket dir.
  chmodSync(base, 0o755);
  check('mungekey', ['--create', `--keyfile=${join(munge, 'munge.key')}`]);
  check('chown', ['-R', 'munge:munge', munge]);
  chmodSync(munge, 0o755);
  chmodSync(join(munge, 'run'), 0o755);
  chmodSync(join(munge, 'munge.key'), 0o600);

  const children: ChildProcess[] = [];
  const mungedPidFile = join(munge, 'run', 'munged.pid');
  const killMunged = () => {
    try {
      process.kill(Number(readFileSync(mungedPidFile, 'utf8')), 'SIGTERM');
    } catch {
      // not started, or gone already
    }
  };
  // Last resort if the test process exits without stop(): never leave daemons behind.
  const onExit = () => {
    for (const c of children) c.kill('SIGTERM');
    killMunged();
  };
  process.once('exit', onExit);
  const logs = [join(munge, 'log', 'munged.log'), join(base, 'log', 'slurmctld.log'), join(base, 'log', 'slurmd.log')];

  const stop = async () => {
    process.off('exit', onExit);
    const jobs = spawnSync('squeue', ['-h', '-o', '%A'], { encoding: 'utf8', env: { ...process.env, ...env } }).stdout ?? '';
    const ids = [...new Set(jobs.split('\n').filter(Boolean))];
    if (ids.length) spawnSync('scancel', ids, { env: { ...process.env, ...env } });
    const [mungeWrapper, ...slurm] = children;
    await Promise.all(slurm.map((c) => stopChild(c, 10_000)));
    // runuser forwards nothing: stop munged itself by its pid file, then its wrapper exits.
    killMunged();
    if (mungeWrapper) {
      const timer = setTimeout(() => mungeWrapper.kill('SIGKILL'), 10_000);
      await exited(mungeWrapper);
      clearTimeout(timer);
    }
    rmSync(base, { recursive: true, force: true });
  };

  try {
    children.push(daemon('runuser', ['-u', 'munge', '--', '/usr/sbin/munged', '-F', `--socket=${sock}`,
      `--key-file=${join(munge, 'munge.key')}`, `--log-file=${logs[0]}`, `--pid-file=${mungedPidFile}`,
      `--seed-file=${join(munge, 'lib', 'munged.seed')}`], join(base, 'log', 'munged.stdout')));
    await until('munged', () => existsSync(sock) && existsSync(mungedPidFile), 15_000, children, logs);
    check('sh', ['-c', 'munge -n -S "$1" | unmunge -S "$1" >/dev/null', 'sh', sock]);
    writeFileSync(conf, slurmConf(base, sock, await freePort(), await freePort()));
    children.push(daemon('/usr/sbin/slurmctld', ['-D', '-f', conf], join(base, 'log', 'slurmctld.stdout')));
    children.push(daemon('/usr/sbin/slurmd', ['-D', '-f', conf], join(base, 'log', 'slurmd.stdout')));
    const idle = () => spawnSync('sinfo', ['-h', '-o', '%t'], { encoding: 'utf8', env: { ...process.env, ...env } }).stdout?.trim() === 'idle';
    await until('the node', idle, 30_000, children, logs);
  } catch (e) {
    await stop();
    throw e;
  }
  return { base, env, stop };
}

function slurmConf(base: string, sock: string, ctldPort: number, slurmdPort: number): string {
  const host = hostname().split('.')[0]!;
  // RealMemory must not exceed what slurmd measures, or the node is drained.
  const measured = Number(/RealMemory=(\d+)/.exec(check('slurmd', ['-C']))?.[1] ?? 1100);
  return `ClusterName=normlab-test
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctldPort}
SlurmdPort=${slurmdPort}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${sock}
StateSaveLocation=${base}/state/ctld
SlurmdSpoolDir=${base}/state/d
SlurmctldPidFile=${base}/run/slurmctld.pid
SlurmdPidFile=${base}/run/slurmd.pid
SlurmctldLogFile=${base}/log/slurmctld.log
SlurmdLogFile=${base}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${base}/log/jobcomp.txt
MinJobAge=300
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${check('nproc', []).trim()} RealMemory=${Math.max(100, measured - 100)} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`;
}
