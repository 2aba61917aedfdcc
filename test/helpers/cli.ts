// Running the real CLI in a child process, on configs written to a temp dir.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'normlab');

export function tempDir(prefix = 'normlab-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A tiny run config whose outputs live under `dir`. */
export function writeConfig(dir: string, overrides: { train?: object; model?: object; name?: string } = {}, file = 'config.yaml'): string {
  const config = {
    name: overrides.name ?? 'tiny',
    model: { preset: 'nano', n_layers: 2, ...overrides.model },
    train: {
      steps: 30, batch_size: 2, seq_len: 32, lr: 3e-3, warmup_steps: 5,
      eval_every: 10, eval_batches: 2, diag_every: 5, checkpoint_every: 5, ...overrides.train,
    },
    data: { corpus: 'brown', tokenizer: 'byte' },
    output: { runs_dir: join(dir, 'runs') },
  };
  const path = join(dir, file);
  writeFileSync(path, stringify(config));
  return path;
}

export function runCli(args: string[], cwd = ROOT, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function startCli(args: string[], cwd = ROOT, env: NodeJS.ProcessEnv = {}) {
  return spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}
