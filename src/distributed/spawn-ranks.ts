// `normlab train --nproc-per-node N`: N ranks on this machine, as torchrun
// would start them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT),
// each with its share of the cores (on CUDA, its own GPU: cuda:LOCAL_RANK).
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';

/** A TCP port free on this machine now, for rank 0's TCPStore. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Rank k's environment: torchrun's variables, and an equal share of the cores for its torch threads unless the user set them. */
export function rankEnvironment(
  rank: number, worldSize: number, port: number, env: NodeJS.ProcessEnv = process.env, cores = availableParallelism(),
): NodeJS.ProcessEnv {
  return {
    ...env,
    RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank),
    MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
    NORMLAB_TORCH_THREADS: env.NORMLAB_TORCH_THREADS ?? String(Math.max(1, Math.floor(cores / worldSize))),
  };
}

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

function describe(e: RankExit): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
}

/**
 * Runs `node <bin> <args>` as ranks 0 … n-1 and waits for them. When one ends
 * badly the others stop on their own (their next collective fails), and are
 * killed if they have not within `graceSeconds`. Resolves to the exit code of
 * the run: rank 0's, or 1 when a rank died of a signal; `say` names the rank.
 */
export async function runRanks(
  n: number, bin: string, args: string[], graceSeconds: number, say: (text: string) => void,
): Promise<number> {
  const port = await freePort();
  const children: ChildProcess[] = Array.from({ length: n }, (_, rank) =>
    spawn(process.execPath, [...process.execArgv, bin, ...args], { stdio: 'inherit', env: rankEnvironment(rank, n, port) }));
  // SIGINT reaches every rank from the terminal; a SIGTERM sent to this process is passed on.
  const forward = (signal: NodeJS.Signals) => { for (const c of children) if (c.exitCode === null) c.kill(signal); };
  const ignore = () => {};
  process.on('SIGTERM', forward);
  process.on('SIGINT', ignore);
  let killer: NodeJS.Timeout | undefined;
  try {
    const exits = await Promise.all(children.map((child, rank) => new Promise<RankExit>((resolve) => {
      child.on('error', () => resolve({ rank, code: 1, signal: null }));
      child.on('exit', (code, signal) => {
        const e = { rank, code, signal };
        if ((code !== 0 || signal) && !killer && !(code === 130)) {
          say(`rank ${rank} ${describe(e)}; the other ranks stop within ${graceSeconds} s`);
          killer = setTimeout(() => forward('SIGKILL'), graceSeconds * 1000);
        }
        resolve(e);
      });
    })));
    const dead = exits.find((e) => e.signal && e.signal !== 'SIGINT' && e.signal !== 'SIGTERM');
    return dead ? 1 : exits[0]!.code ?? 1;
  } finally {
    clearTimeout(killer);
    process.off('SIGTERM', forward);
    process.off('SIGINT', ignore);
  }
}
