// The sbatch script of one submission: a file a person can read and resubmit by
// hand. Array index = the run's index in the plan (#N in `normlab sweep --status`);
// the script maps each index to its run id, so a task trains exactly that run
// even if the plan is rewritten meanwhile.

export interface ScriptOptions {
  sweep: string;
  /** The sweep file as the user named it, for the header. */
  source: string;
  runs: { index: number; id: string }[];
  /** Absolute paths: a task starts on another machine, in --chdir. */
  planFile: string;
  logDir: string;
  workDir: string;
  /** The command up to the subcommand: node, bin/normlab, global flags. */
  normlab: string[];
  /** Flags of `sweep-task` besides the plan and the run. */
  taskArgs: string[];
  partition?: string;
  time?: string;
  /** GPUs per run: 1 is one task with a GPU; N > 1 runs it as N ranks (data parallel), one task and one GPU each. */
  gpusPerTask?: number;
  arrayParallel?: number;
  sbatchArgs: string[];
}

/** `--array` value: consecutive indices as ranges (1-4,7), `%N` to cap concurrent tasks. */
export function arraySpec(indices: number[], parallel?: number): string {
  const sorted = [...indices].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const start = sorted[i]!;
    while (sorted[i + 1] === sorted[i]! + 1) i++;
    ranges.push(start === sorted[i] ? `${start}` : `${start}-${sorted[i]}`);
  }
  return ranges.join(',') + (parallel ? `%${parallel}` : '');
}

/** Raised when a string cannot be written into a script safely (a newline would start a shell line). */
export class ScriptTextError extends Error {
  readonly exitCode = 2;
}

/** `text` unchanged, after checking it holds no control character; `what` names it in the error. */
export function scriptText(text: string, what: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) {
    throw new ScriptTextError(`${what}: ${JSON.stringify(text)} contains a control character (newline, tab …), which cannot go into an sbatch script`);
  }
  return text;
}

/** Single-quoted for bash: safe for any path or flag; refuses control characters. */
export function shellQuote(text: string, what = 'script word'): string {
  scriptText(text, what);
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * One `#SBATCH` line. sbatch reads these itself (no shell), splitting at blanks and
 * honouring double quotes: a value with blanks is double-quoted, one with a double
 * quote or a control character is refused.
 */
export function sbatchLine(flag: string, what = 'sbatch option'): string {
  scriptText(flag, what);
  if (!flag.startsWith('-')) throw new ScriptTextError(`${what}: expected an option starting with "-", got ${JSON.stringify(flag)}`);
  if (flag.includes('"')) throw new ScriptTextError(`${what}: ${JSON.stringify(flag)} contains a double quote, which sbatch cannot read back`);
  const eq = flag.indexOf('=');
  const [name, value] = eq < 0 ? [flag, undefined] : [flag.slice(0, eq), flag.slice(eq + 1)];
  if (/\s/.test(name)) throw new ScriptTextError(`${what}: ${JSON.stringify(flag)} has a blank in the option name`);
  if (value === undefined) return `#SBATCH ${name}`;
  return `#SBATCH ${name}=${/\s/.test(value) ? `"${value}"` : value}`;
}

/** The one word of the exec line left for bash to expand: this task's run id. */
const RUN_OF_TASK = '"${RUN[$SLURM_ARRAY_TASK_ID]}"';

export function renderScript(o: ScriptOptions): string {
  const sbatch = (flags: string[]) => flags.map((f) => sbatchLine(f));
  // Run ids are checked names already; quoted all the same, the script being the last line of defence.
  const table = o.runs.map((r) => `  [${Math.trunc(r.index)}]=${shellQuote(r.id, 'run id')}`);
  const words = [...o.normlab, 'sweep-task', o.planFile, '--run', RUN_OF_TASK, ...o.taskArgs];
  const ranks = Math.trunc(o.gpusPerTask ?? 1);
  return [
    '#!/bin/bash',
    `# normlab sweep ${scriptText(o.sweep, 'sweep name')} (${scriptText(o.source, 'sweep file')}): ${o.runs.length} run(s), one per array task.`,
    ...sbatch([
      `--job-name=normlab-${o.sweep}`,
      `--array=${arraySpec(o.runs.map((r) => r.index), o.arrayParallel)}`,
      `--output=${o.logDir}/%A_%a.out`,
      `--error=${o.logDir}/%A_%a.err`,
      `--chdir=${o.workDir}`,
    ]),
    '# after a node failure or preemption Slurm requeues the task; it resumes from the last',
    '# checkpoint and appends to its log files',
    ...sbatch(['--requeue', '--open-mode=append']),
    ...sbatch([
      ...(o.partition ? [`--partition=${o.partition}`] : []),
      ...(o.time ? [`--time=${o.time}`] : []),
      ...(o.gpusPerTask ? [`--ntasks=${Math.trunc(o.gpusPerTask)}`, '--gpus-per-task=1'] : []),
    ]),
    ...o.sbatchArgs.map((a) => sbatchLine(a, '--sbatch-arg')),
    'set -euo pipefail',
    '',
    '# array index -> run (the index is the run\'s # in the plan)',
    'RUN=(',
    ...table,
    ')',
    '',
    '# exec: normlab itself gets Slurm\'s SIGTERM (scancel, time limit, preemption), checkpoints',
    '# the run and exits 130; a requeue or the next `normlab sweep --executor slurm` resumes it.',
    ...(ranks > 1 ? [
      `# srun starts the run as ${ranks} ranks, one per GPU, on as many nodes as they need; rank 0 (the first`,
      '# node) claims the run and writes it. A rank that fails ends the others (--kill-on-bad-exit).',
    ] : []),
    `exec ${[...(ranks > 1 ? ['srun', '--kill-on-bad-exit=1'] : []), ...words].map((w) => (w === RUN_OF_TASK ? w : shellQuote(w))).join(' ')}`,
    '',
  ].join('\n');
}
