// The normlab command line: each command lives in its own file and only wires
// components together. Registering a command loads only its declaration (light
// modules; a heavy command's flags are in <command>-command.ts); its work, with
// TensorFlow.js, the backends or the report's renderers, is imported when it runs,
// so `normlab runs` and `normlab --help` start quickly.
import { Command, CommanderError } from 'commander';
import { registerAnalyze } from './analyze-command.ts';
import { registerBench } from './bench-command.ts';
import { deviceOption, selectDevice } from './common.ts';
import { registerData } from './data.ts';
import { registerDb } from './db.ts';
import { registerDoctor } from './doctor-command.ts';
import { registerExport } from './export.ts';
import { registerPlan } from './plan-command.ts';
import { registerReport } from './report.ts';
import { registerRuns } from './runs.ts';
import { registerSample } from './sample-command.ts';
import { registerStore } from './store.ts';
import { registerSweep } from './sweep-command.ts';
import { registerTrain } from './train-command.ts';
import { registerVerify } from './verify.ts';

import { VERSION } from './version.ts';

/** Commands report their exit code through this instead of calling process.exit. */
export type SetExitCode = (code: number) => void;

/** Runs the CLI and returns the process exit code (2 for bad input). */
export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const setExitCode: SetExitCode = (code) => { exitCode = code; };
  const program = new Command('normlab')
    .description('pre-train LLaMA-style models under different layer-norm strategies')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addOption(deviceOption())
    .hook('preAction', () => selectDevice(program.opts().device));
  for (const register of [registerTrain, registerData, registerSweep, registerRuns, registerStore, registerReport, registerExport, registerAnalyze, registerSample, registerVerify, registerBench, registerPlan, registerDoctor, registerDb]) register(program, setExitCode);
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (e) {
    return reportError(e);
  }
}

function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    // Commander has printed the message; --help and --version exit 0.
    return e.exitCode === 0 ? 0 : 2;
  }
  const err = e as Error & { exitCode?: number };
  if (typeof err.exitCode === 'number') {
    console.error(`normlab: ${err.message}`);
    return err.exitCode;
  }
  // A system or SQLite error (ENOSPC, EACCES, SQLITE_FULL …) is the machine's, not a bug: its message names what failed.
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && /^(E[A-Z]+|SQLITE_[A-Z_]+)$/.test(code)) {
    console.error(`normlab: ${err.message}${err.message.includes(code) ? '' : ` (${code})`}`);
    return 1;
  }
  console.error(`normlab: ${err?.stack ?? String(e)}`);
  return 1;
}
