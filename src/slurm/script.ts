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

/** Single-quoted for bash: safe for any path or flag. */
export function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

export function renderScript(o: ScriptOptions): string {
  const sbatch = (flags: string[]) => flags.map((f) => `#SBATCH ${f}`);
  const table = o.runs.map((r) => `  [${r.index}]=${r.id}`);
  const command = [...o.normlab, 'sweep-task', o.planFile, '--run', '"${RUN[$SLURM_ARRAY_TASK_ID]}"', ...o.taskArgs];
  return [
    '#!/bin/bash',
    `# normlab sweep ${o.sweep} (${o.source}): ${o.runs.length} run(s), one per array task.`,
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
      ...(o.gpusPerTask ? ['--ntasks=1', `--gpus-per-task=${o.gpusPerTask}`] : []),
      ...o.sbatchArgs,
    ]),
    'set -euo pipefail',
    '',
    '# array index -> run (the index is the run\'s # in the plan)',
    'RUN=(',
    ...table,
    ')',
    '',
    '# exec: normlab itself gets Slurm\'s SIGTERM (scancel, time limit, preemption), checkpoints',
    '# the run and exits 130; a requeue or the next `normlab sweep --executor slurm` resumes it.',
    `exec ${command.map((c) => (c.startsWith('"') ? c : shellQuote(c))).join(' ')}`,
    '',
  ].join('\n');
}
