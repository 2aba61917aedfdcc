// Issue 23's check by hand (minutes, ~8 GB RAM): the 350M preset on torch at
// batch 1 — step, checkpoint, SIGKILL, resume, finish — with the peak RSS
// before the first checkpoint, after it and of the resumed run, and the
// checkpoint write and read throughput next to the disk's own. An
// uninterrupted two-step run gives the training peak the resumed run is held
// to (step 2 holds AdamW moments that step 1 only creates). Figures go to
// docs/performance.md.
//
//   node --import tsx scripts/checkpoint-350m.ts [--keep]
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../src/backend/index.ts';
import { parameterShapes } from '../src/model/model.ts';
import { resolveRunConfig } from '../src/config/load.ts';
import { loadCheckpoint } from '../src/train/checkpoint.ts';

const ROOT = resolve(import.meta.dirname, '..');
const MiB = 2 ** 20;
const runsDir = mkdtempSync(join(tmpdir(), 'normlab-350m-'));
const command = (runs: string, checkpointEvery: number) => [
  join(ROOT, 'bin', 'normlab'), 'train', join(ROOT, 'configs', 'smoke.yaml'), '--backend', 'torch',
  '--set', 'model.preset=350m', '--set', 'train.batch_size=1', '--set', 'train.steps=2', '--set', `train.checkpoint_every=${checkpointEvery}`,
  '--set', `output.runs_dir=${runs}`, '--quiet',
];

/** Peak resident set (VmHWM) of a live process, in bytes. */
function peakRss(pid: number): number | undefined {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

function checkpointsDir(runs = runsDir): string | undefined {
  const run = existsSync(runs) ? readdirSync(runs).find((n) => n.startsWith('smoke-')) : undefined;
  return run && join(runs, run, 'checkpoints');
}

const entries = (runs: string) => {
  const dir = checkpointsDir(runs);
  return dir && existsSync(dir) ? readdirSync(dir) : [];
};

interface Watch {
  /** VmHWM when the checkpoint's temporary folder first appeared: the peak before it. */
  before?: number;
  /** VmHWM once the checkpoint's folder was renamed into place. */
  after?: number;
  writeSeconds?: number;
  peak: number;
  code: number | null;
}

/** Runs the command, watching the checkpoint of `step`; kills the process once it is in place when asked. */
async function watch(step: number, kill: boolean, runs = runsDir, checkpointEvery = 1): Promise<Watch> {
  const child = spawn(process.execPath, command(runs, checkpointEvery), { stdio: ['ignore', 'inherit', 'inherit'] });
  let code: number | null | undefined;
  child.on('exit', (c, signal) => { code = c ?? (signal ? 128 + 9 : null); });
  const name = `step-${String(step).padStart(8, '0')}`;
  const w: Watch = { peak: 0, code: null };
  let started = 0;
  while (code === undefined) {
    const rss = peakRss(child.pid!);
    if (rss !== undefined) w.peak = rss;
    const now = entries(runs);
    if (w.before === undefined && now.some((n) => n.startsWith(`${name}.tmp-`))) {
      w.before = w.peak;
      started = performance.now();
    }
    if (w.before !== undefined && w.after === undefined && now.includes(name)) {
      w.writeSeconds = (performance.now() - started) / 1000;
      w.after = peakRss(child.pid!) ?? w.peak;
      if (kill) child.kill('SIGKILL');
    }
    await sleep(10);
  }
  w.code = code;
  return w;
}

function folderBytes(dir: string, filter: (name: string) => boolean = () => true): number {
  return readdirSync(dir).filter(filter).reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
}

const mib = (bytes: number | undefined) => (bytes === undefined ? '?' : `${(bytes / MiB).toFixed(0)} MiB`);

const first = await watch(1, true);
console.log(`first run: peak before its checkpoint ${mib(first.before)}, after it ${mib(first.after)}, write ${first.writeSeconds?.toFixed(1)} s, killed (exit ${first.code})`);
const resumed = await watch(2, false);
console.log(`resumed run: exit ${resumed.code}, peak before its checkpoint ${mib(resumed.before)}, overall ${mib(resumed.peak)}, write ${resumed.writeSeconds?.toFixed(1)} s`);

const referenceDir = mkdtempSync(join(tmpdir(), 'normlab-350m-reference-'));
const reference = await watch(2, false, referenceDir, 2);
rmSync(referenceDir, { recursive: true, force: true });
console.log(`uninterrupted run: peak over two steps ${mib(reference.before)}`);

/** The disk's own rate: 1 GiB in 64 MiB writes, fsynced. */
function diskWriteRate(): number {
  const file = join(runsDir, 'disk-rate');
  const chunk = Buffer.alloc(64 * MiB, 1);
  const t0 = performance.now();
  const fd = openSync(file, 'w');
  for (let i = 0; i < 16; i++) writeSync(fd, chunk);
  fsyncSync(fd);
  closeSync(fd);
  const seconds = (performance.now() - t0) / 1000;
  rmSync(file);
  return 1024 / seconds;
}
const disk = diskWriteRate();

const cfg = resolveRunConfig({ model: { preset: '350m' } }, '350m').model;
const largest = Math.max(...[...parameterShapes(cfg).values()].map((s) => s.reduce((a, b) => a * b, 1) * 4));
const bound = first.before! + largest + 256 * MiB;
const resumeBound = reference.before! + largest + 256 * MiB;
const last = join(checkpointsDir()!, 'step-00000002');
const size = folderBytes(last);
const weights = folderBytes(last, (n) => n.startsWith('model'));

await useBackend('torch');
let t = performance.now();
const all = loadCheckpoint(last);
const readSeconds = (performance.now() - t) / 1000;
tf.dispose([...Object.values(all.params), ...Object.values(all.moments!.m), ...Object.values(all.moments!.v)]);
t = performance.now();
const weightsOnly = loadCheckpoint(last, { optimizer: false });
const weightsSeconds = (performance.now() - t) / 1000;
tf.dispose(Object.values(weightsOnly.params));

console.log(`
| what | figure |
| --- | --- |
| checkpoint size | ${mib(size)} (model ${mib(weights)}, optimizer ${mib(size - weights)}); largest tensor ${mib(largest)} |
| peak RSS before the first checkpoint | ${mib(first.before)} |
| peak RSS after the first checkpoint | ${mib(first.after)} (bound: before + largest tensor + 256 MiB = ${mib(bound)}: ${first.after! <= bound ? 'within' : 'EXCEEDED'}) |
| peak RSS of an uninterrupted run over steps 1 and 2 | ${mib(reference.before)} |
| peak RSS of the resumed run (load, step 2, its checkpoint) | ${mib(resumed.peak)} (bound: uninterrupted + largest tensor + 256 MiB = ${mib(resumeBound)}: ${resumed.peak <= resumeBound ? 'within' : 'EXCEEDED'}) |
| the disk, 1 GiB written and fsynced | ${disk.toFixed(0)} MiB/s |
| write (step 1, tensors fetched from the backend, hashed, fsynced) | ${first.writeSeconds!.toFixed(1)} s, ${(size / MiB / first.writeSeconds!).toFixed(0)} MiB/s |
| write (step 2, resumed run) | ${resumed.writeSeconds!.toFixed(1)} s, ${(size / MiB / resumed.writeSeconds!).toFixed(0)} MiB/s |
| read + verify everything into torch tensors | ${readSeconds.toFixed(1)} s, ${(size / MiB / readSeconds).toFixed(0)} MiB/s |
| read + verify weights only (analyze, sample) | ${weightsSeconds.toFixed(1)} s, ${(weights / MiB / weightsSeconds).toFixed(0)} MiB/s |
`);
if (resumed.code !== 0) console.error(`the resumed run exited ${resumed.code}`);
if (!process.argv.includes('--keep')) rmSync(runsDir, { recursive: true, force: true });
else console.log(`run kept in ${runsDir}`);
process.exitCode = resumed.code === 0 && first.after! <= bound && resumed.peak <= resumeBound ? 0 : 1;
