// Talking to Slurm through its client commands: submitting a script, and where
// each array task stands. Accounting (sacct) is often disabled and scontrol
// forgets a job MinJobAge seconds after it ends, so a task's state comes from
// the first source that knows it: scontrol, then sacct, then the job-completion
// file (jobcomp/filetxt) when this machine can read it.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** A task's state as Slurm names it (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, …). */
export interface TaskState {
  state: string;
  /** The batch script's exit status, and the signal that ended it (0: none). */
  exitCode: number;
  signal: number;
  /** Why a task is pending (Resources, Priority, JobArrayTaskLimit, …). */
  reason?: string;
  source: 'scontrol' | 'sacct' | 'jobcomp';
}

export class SlurmError extends Error {
  readonly exitCode = 1;
}

/** `<array job id>_<task index>`, as Slurm writes it. */
export const taskKey = (jobId: string, index: number) => `${jobId}_${index}`;

/** States after which a task will not run again unless requeued or resubmitted. */
const ENDED = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'OUT_OF_MEMORY']);

/** Pending, running, requeued, completing, suspended…: the task may still train its run. */
export function isActive(state: TaskState): boolean {
  return !ENDED.has(state.state);
}

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
  missing: boolean;
}

function run(command: string, args: string[]): Ran {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 60_000 });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error && !missing ? r.error.message : ''), missing };
}

/** Submits a batch script; returns the job id sbatch assigned. */
export function submitScript(script: string): string {
  const r = run('sbatch', ['--parsable', script]);
  if (r.missing) throw new SlurmError('sbatch not found: --executor slurm needs Slurm\'s client commands on this machine');
  if (r.status !== 0) throw new SlurmError(`sbatch ${script} failed (exit ${r.status}): ${r.stderr.trim()}`);
  // --parsable prints "<job id>" or "<job id>;<cluster>".
  const jobId = r.stdout.trim().split(';')[0]!;
  if (!/^\d+$/.test(jobId)) throw new SlurmError(`sbatch printed no job id: ${r.stdout.trim()}`);
  return jobId;
}

export interface TaskStates {
  tasks: Map<string, TaskState>;
  /** Why a source could not be asked (Slurm absent, controller down); tasks it would have told stay unknown. */
  problems: string[];
}

/** The state of every task of these array jobs that any source still knows. */
export function queryTasks(jobIds: string[]): TaskStates {
  const tasks = new Map<string, TaskState>();
  const problems: string[] = [];
  if (jobIds.length === 0) return { tasks, problems };
  const fill = (found: Map<string, TaskState>) => {
    for (const [key, state] of found) if (!tasks.has(key)) tasks.set(key, state);
  };
  for (const id of jobIds) {
    const r = run('scontrol', ['-o', 'show', 'job', id]);
    if (r.missing) return { tasks, problems: ['scontrol not found: Slurm states unknown on this machine'] };
    if (r.status === 0) fill(parseScontrol(r.stdout));
    else if (!/Invalid job id/i.test(r.stderr)) problems.push(`scontrol show job ${id}: ${r.stderr.trim()}`);
  }
  // Accounting disabled makes sacct fail: that is expected, not a problem.
  const sacct = run('sacct', ['-n', '-P', '-X', '-j', jobIds.join(','), '-o', 'JobID,State,ExitCode']);
  if (sacct.status === 0) fill(parseSacct(sacct.stdout));
  const jobcomp = jobCompFile();
  if (jobcomp) fill(parseJobComp(readTail(jobcomp, 16 * 2 ** 20), new Set(jobIds)));
  return { tasks, problems };
}

/** key=value pairs of one record (scontrol -o, jobcomp/filetxt). */
function fields(line: string): Map<string, string> {
  return new Map([...line.matchAll(/(?:^|\s)([\w/:]+)=(\S*)/g)].map((m) => [m[1]!, m[2]!]));
}

/** "1:0" is exit status 1, no signal; "0:15" is killed by signal 15. */
function exitStatus(text: string | undefined): { exitCode: number; signal: number } {
  const [code, signal] = (text ?? '0:0').split(':').map(Number);
  return { exitCode: code ?? 0, signal: signal ?? 0 };
}

/** Task indices of an ArrayTaskId field: "3", or a pending group such as "2-4,7%2". */
export function taskIndices(text: string): number[] {
  return text.replace(/%\d+$/, '').split(',').flatMap((part) => {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part);
    if (!m) return [];
    const [from, to, step] = [Number(m[1]), Number(m[2] ?? m[1]), Number(m[3] ?? 1)];
    return Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);
  });
}

/** `scontrol -o show job <id>`: one line per task (pending tasks not yet started share one line). */
export function parseScontrol(text: string): Map<string, TaskState> {
  const tasks = new Map<string, TaskState>();
  for (const line of text.split('\n')) {
    const f = fields(line);
    const job = f.get('ArrayJobId');
    const state = f.get('JobState');
    if (!job || !state) continue;
    const reason = f.get('Reason');
    for (const index of taskIndices(f.get('ArrayTaskId') ?? '')) {
      tasks.set(taskKey(job, index), {
        state, ...exitStatus(f.get('ExitCode')), source: 'scontrol',
        ...(reason && reason !== 'None' && { reason }),
      });
    }
  }
  return tasks;
}

/** `sacct -n -P -X -o JobID,State,ExitCode`: "12_3|FAILED|1:0", "12_[4-6%2]|PENDING|0:0", "CANCELLED by 0". */
export function parseSacct(text: string): Map<string, TaskState> {
  const tasks = new Map<string, TaskState>();
  for (const line of text.split('\n')) {
    const [id, state, exit] = line.trim().split('|');
    const m = /^(\d+)_\[?([^\]]+)\]?$/.exec(id ?? '');
    if (!m || !state) continue;
    for (const index of taskIndices(m[2]!)) {
      tasks.set(taskKey(m[1]!, index), { state: state.split(' ')[0]!, ...exitStatus(exit), source: 'sacct' });
    }
  }
  return tasks;
}

/** jobcomp/filetxt: one line per ended task; a requeued task's last line is its latest. */
export function parseJobComp(text: string, jobIds: Set<string>): Map<string, TaskState> {
  const tasks = new Map<string, TaskState>();
  for (const line of text.split('\n')) {
    const f = fields(line);
    const job = f.get('ArrayJobId');
    const index = Number(f.get('ArrayTaskId'));
    const state = f.get('JobState');
    if (!job || !jobIds.has(job) || !Number.isInteger(index) || !state) continue;
    tasks.set(taskKey(job, index), { state, ...exitStatus(f.get('ExitCode')), source: 'jobcomp' });
  }
  return tasks;
}

/** The job-completion file, when the cluster keeps one (jobcomp/filetxt) and this machine sees it. */
function jobCompFile(): string | undefined {
  const r = run('scontrol', ['show', 'config']);
  if (r.status !== 0) return undefined;
  const setting = (key: string) => new RegExp(`^${key}\\s*=\\s*(.*)$`, 'm').exec(r.stdout)?.[1]?.trim();
  const file = setting('JobCompLoc');
  if (setting('JobCompType') !== 'jobcomp/filetxt' || !file) return undefined;
  try {
    return statSync(file).isFile() ? file : undefined;
  } catch {
    return undefined;
  }
}

/** The file's last `bytes` (a busy cluster's completion file grows without bound), from a whole line. */
function readTail(file: string, bytes: number): string {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    const start = Math.max(0, size - bytes);
    const buffer = Buffer.alloc(size - start);
    readSync(fd, buffer, 0, buffer.length, start);
    const text = buffer.toString('utf8');
    return start === 0 ? text : text.slice(text.indexOf('\n') + 1);
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}
