// The record of a sweep's Slurm submissions, runs/sweeps/<sweep>/slurm.json:
// which array job and task index trained (or is to train) each run. A run's
// latest submission is the one that tells where it stands.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Submission {
  jobId: string;
  submittedAt: string;
  script: string;
  /** Array index -> run id. */
  runs: Record<string, string>;
}

/** Where one run's Slurm task is: array job and index. */
export interface SlurmTask {
  jobId: string;
  index: number;
}

const RECORD = 'slurm.json';

export function readSubmissions(sweepDir: string): Submission[] {
  const file = path.join(sweepDir, RECORD);
  if (!existsSync(file)) return [];
  return (JSON.parse(readFileSync(file, 'utf8')) as { submissions: Submission[] }).submissions;
}

/** Appends a submission (atomically: a status query elsewhere may be reading the file). */
export function recordSubmission(sweepDir: string, submission: Submission): void {
  const submissions = [...readSubmissions(sweepDir), submission];
  mkdirSync(sweepDir, { recursive: true });
  const file = path.join(sweepDir, RECORD);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ submissions }, null, 2));
  renameSync(tmp, file);
}

/** Each run's task in its latest submission. */
export function latestTasks(submissions: Submission[]): Map<string, SlurmTask> {
  const tasks = new Map<string, SlurmTask>();
  for (const s of submissions) {
    for (const [index, id] of Object.entries(s.runs)) tasks.set(id, { jobId: s.jobId, index: Number(index) });
  }
  return tasks;
}

/** The latest task of every run submitted from any sweep under `runsDir` (for `normlab runs`). */
export function tasksUnder(runsDir: string): Map<string, SlurmTask> {
  const sweeps = path.join(runsDir, 'sweeps');
  if (!existsSync(sweeps)) return new Map();
  const dirs = readdirSync(sweeps, { withFileTypes: true }).filter((e) => e.isDirectory());
  return latestTasks(dirs.flatMap((e) => readSubmissions(path.join(sweeps, e.name))));
}
