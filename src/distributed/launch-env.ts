// Which rank this process is, from the environment its launcher set: torchrun's
// (also what `normlab train --nproc-per-node` sets for its ranks) or Slurm's
// (srun, one task per GPU). No such environment, or a world of one: one process.

/** This process's place in a data-parallel run. */
export interface RankEnv {
  rank: number;
  worldSize: number;
  /** Rank on this machine: its GPU is cuda:localRank. */
  localRank: number;
  /** Where rank 0 serves c10d's TCPStore. */
  masterAddr: string;
  masterPort: number;
  launcher: 'torchrun' | 'slurm';
}

/** A launcher variable that makes no sense: exit 2, naming it. */
export class LaunchEnvError extends Error {
  readonly exitCode = 2;
}

/** torch.distributed's default rendezvous port. */
export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, min: number, source: string): number {
  const text = env[name];
  const n = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isInteger(n) || n < min) {
    throw new LaunchEnvError(`${name}=${text ?? '(unset)'}: expected a whole number ≥ ${min} (${source}'s environment for data parallel)`);
  }
  return n;
}

function port(env: Env, fallback: number, source: string): number {
  if (env.MASTER_PORT === undefined) return fallback;
  const n = integer(env, 'MASTER_PORT', 1, source);
  if (n > 65535) throw new LaunchEnvError(`MASTER_PORT=${n}: expected a TCP port, 1 to 65535`);
  return n;
}

function checked(e: RankEnv, names: [string, string]): RankEnv | undefined {
  if (e.rank >= e.worldSize) {
    throw new LaunchEnvError(`${names[0]}=${e.rank} is not below ${names[1]}=${e.worldSize}: a rank is 0 to world size - 1`);
  }
  return e.worldSize > 1 ? e : undefined;
}

function torchrun(env: Env): RankEnv | undefined {
  const source = 'torchrun';
  const rank = integer(env, 'RANK', 0, source);
  const worldSize = integer(env, 'WORLD_SIZE', 1, source);
  return checked({
    rank, worldSize,
    localRank: env.LOCAL_RANK === undefined ? rank : integer(env, 'LOCAL_RANK', 0, source),
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: port(env, DEFAULT_MASTER_PORT, source),
    launcher: 'torchrun',
  }, ['RANK', 'WORLD_SIZE']);
}

function slurm(env: Env): RankEnv | undefined {
  const source = 'Slurm';
  const nodelist = env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
  const worldSize = integer(env, env.SLURM_STEP_NUM_TASKS !== undefined ? 'SLURM_STEP_NUM_TASKS' : 'SLURM_NTASKS', 1, source);
  if (worldSize > 1 && !nodelist && !env.MASTER_ADDR) throw new LaunchEnvError('SLURM_JOB_NODELIST is unset: cannot tell which node is rank 0 (or set MASTER_ADDR)');
  const jobId = Number(env.SLURM_JOB_ID);
  return checked({
    rank: integer(env, 'SLURM_PROCID', 0, source),
    worldSize,
    localRank: integer(env, 'SLURM_LOCALID', 0, source),
    masterAddr: env.MASTER_ADDR || (nodelist ? expandNodelist(nodelist)[0]! : '127.0.0.1'),
    // One port per job, so two jobs' ranks sharing a node do not meet.
    masterPort: port(env, Number.isInteger(jobId) ? 20000 + (jobId % 40000) : DEFAULT_MASTER_PORT, source),
    launcher: 'slurm',
  }, ['SLURM_PROCID', 'SLURM_NTASKS']);
}

/**
 * The launcher's rank environment, or undefined for a single process. torchrun's
 * RANK / WORLD_SIZE win over Slurm's; Slurm's count only inside an srun step
 * (SLURM_STEP_ID), not in the batch script around it.
 */
export function rankEnv(env: Env = process.env): RankEnv | undefined {
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) return torchrun(env);
  if (env.SLURM_PROCID !== undefined && env.SLURM_STEP_ID !== undefined) return slurm(env);
  return undefined;
}

/**
 * Host names of a Slurm node list, in order: `gpu[01-04,07],login1` →
 * gpu01 … gpu04, gpu07, login1 (zero padding kept; several bracket groups multiply).
 */
export function expandNodelist(list: string): string[] {
  const hosts = splitTopLevel(list).flatMap(expandHost);
  if (hosts.length === 0) throw new LaunchEnvError(`node list '${list}': no host names in it`);
  return hosts;
}

/** Splits at commas outside brackets. */
function splitTopLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '[') depth++;
    else if (list[i] === ']') depth--;
    else if (list[i] === ',' && depth === 0) {
      parts.push(list.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) throw new LaunchEnvError(`node list '${list}': unbalanced brackets`);
  }
  if (depth !== 0) throw new LaunchEnvError(`node list '${list}': unbalanced brackets`);
  parts.push(list.slice(start));
  return parts.map((p) => p.trim()).filter(Boolean);
}

function expandHost(pattern: string): string[] {
  const open = pattern.indexOf('[');
  if (open < 0) return [pattern];
  const close = pattern.indexOf(']', open);
  const head = pattern.slice(0, open);
  const tails = expandHost(pattern.slice(close + 1));
  return expandRanges(pattern.slice(open + 1, close), pattern).flatMap((n) => tails.map((t) => head + n + t));
}

/** `01-04,07` → 01, 02, 03, 04, 07. */
function expandRanges(spec: string, pattern: string): string[] {
  return spec.split(',').flatMap((item) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item.trim());
    if (!m) throw new LaunchEnvError(`node list '${pattern}': '${item}' is not a number or a range like 01-04`);
    const [, from, to = from] = m as unknown as [string, string, string?];
    const width = from.length;
    const out: string[] = [];
    for (let n = Number(from); n <= Number(to); n++) out.push(String(n).padStart(width, '0'));
    if (out.length === 0) throw new LaunchEnvError(`node list '${pattern}': range ${item} is empty`);
    return out;
  });
}
