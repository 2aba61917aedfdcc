// Issue 22: commands load only what they use. Declaring every command (for
// --help, or to run one) must not load TensorFlow.js, the backends or the
// report's renderers; those are imported when a command that needs them runs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN, tempDir } from './helpers/cli.ts';

const RECORDER = join(import.meta.dirname, 'helpers', 'record-loads.mjs');
const HEAVY = /@tensorflow|\/src\/backend\/(index|torch|wasm)|\/src\/report\/(report|figures|svg|png|html)|\/src\/train\/(trainer|run|step|checkpoint)\.ts|\/src\/model\//;

/** Runs bin/normlab and returns its output and the modules it loaded. */
function loads(args: string[]) {
  const file = join(tempDir(), 'loads.txt');
  const r = spawnSync(process.execPath, ['--import', RECORDER, BIN, ...args], { encoding: 'utf8', env: { ...process.env, RECORD_LOADS: file } });
  return { ...r, modules: readFileSync(file, 'utf8').trim().split('\n') };
}

test('--help, a command\'s --help and runs load no tfjs, backend, trainer, model or report renderer', () => {
  for (const args of [['--help'], ['train', '--help'], ['report', '--help'], ['runs', '--runs-dir', tempDir()]]) {
    const r = loads(args);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.modules.some((m) => m.endsWith('/src/cli/main.ts')), 'the recorder saw normlab load');
    assert.deepEqual(r.modules.filter((m) => HEAVY.test(m)), [], args.join(' '));
  }
});

test('a command that computes still loads its implementation when it runs', () => {
  const r = loads(['plan', join(import.meta.dirname, '..', 'configs', 'smoke.yaml'), '--backend', 'cpu']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /parameters/);
  assert.ok(r.modules.some((m) => m.includes('@tensorflow/tfjs')), 'plan started a backend');
});
