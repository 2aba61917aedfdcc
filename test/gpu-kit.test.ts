// The GPU kit's CPU half: build it, unpack it where no Node is on PATH, build the
// addon against the system's libtorch with the kit's own script, and run its
// check on CPU (doctor, verify on every reference case, a short bench, 2 Gloo ranks).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { findLibtorch } from '../scripts/build-torch.ts';
import { ROOT } from './helpers/cli.ts';

const GOLDEN = [join(ROOT, '..', 'shared', 'golden'), join(ROOT, '..', '..', 'shared', 'golden')].find((d) => existsSync(d));
const NODE_NAMES = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack', 'tsx']);
const skip = (!findLibtorch() && 'no libtorch here to build the addon against') || (!GOLDEN && 'no reference cases (../shared/golden)');

/** A PATH of links to every program on this PATH except Node's. */
function pathWithoutNode(dir: string): string {
  mkdirSync(dir);
  for (const from of (process.env.PATH ?? '').split(delimiter).filter(existsSync)) {
    for (const name of readdirSync(from)) {
      if (NODE_NAMES.has(name) || existsSync(join(dir, name))) continue;
      symlinkSync(join(from, name), join(dir, name));
    }
  }
  return dir;
}

test('the GPU kit builds under 64 MiB and its check passes on CPU without Node on PATH', { skip, timeout: 8 * 60_000 }, () => {
  const scratch = mkdtempSync(join(tmpdir(), 'normlab-kit-'));
  try {
    const kit = join(scratch, 'kit');
    const built = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gpu-kit.ts', '--out', kit, '--golden', GOLDEN!, '--xz', '1'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr + built.stdout);
    const size = spawnSync('du', ['-sb', kit], { encoding: 'utf8' }).stdout.split('\t')[0];
    assert.ok(Number(size) < 64 * 2 ** 20, `kit is ${size} bytes`);
    const bin = readdirSync(join(kit, 'app', 'bin'));
    for (const f of ['normlab.mjs', 'worker.mjs', 'better_sqlite3.node', 'resvgjs.linux-x64-gnu.node', 'tfjs-backend-wasm.wasm']) assert.ok(bin.includes(f), `app/bin lacks ${f}`);
    assert.deepEqual(bin.filter((f) => f.endsWith('.node') && /darwin|win32|musl|arm/.test(f)), [], 'only linux-x64-gnu addons are carried');
    assert.deepEqual(readdirSync(join(kit, 'app', 'node_modules', 'tokenizers')).filter((f) => f.endsWith('.node')), ['tokenizers.linux-x64-gnu.node']);
    assert.equal(readdirSync(join(kit, 'golden')).length, readdirSync(GOLDEN!).filter((c) => existsSync(join(GOLDEN!, c, 'expected.json'))).length);

    const PATH = pathWithoutNode(join(scratch, 'bin'));
    assert.notEqual(spawnSync('sh', ['-c', 'command -v node'], { env: { PATH } }).status, 0, 'node is still on the PATH');
    const out = join(scratch, 'out');
    // The 450 s budget is for one H100; a busy 2-core CI machine may need longer for the addon.
    const env = { PATH, HOME: scratch, LANG: 'C.UTF-8', GPU_CHECK_BUDGET_S: '1500' };
    const check = spawnSync(join(kit, 'gpu-check'), [out, '--device', 'cpu', '--quick'], { cwd: scratch, env, encoding: 'utf8' });
    const summary = existsSync(join(out, 'summary.txt')) ? readFileSync(join(out, 'summary.txt'), 'utf8') : '(no summary)';
    assert.equal(check.status, 0, `${check.stdout}\n${check.stderr}\n${summary}`);
    assert.ok(statSync(join(kit, 'bin', 'node')).size > 0, 'the kit unpacks its own node');
    const hf = spawnSync(join(kit, 'bin', 'node'), ['-e', "console.log(typeof require('./app/node_modules/tokenizers').Tokenizer.fromString)"], { cwd: kit, env, encoding: 'utf8' });
    assert.equal(hf.stdout.trim(), 'function', `HF tokenizers loads in the kit: ${hf.stderr}`);
    const { steps, figures } = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    const status = Object.fromEntries(steps.map((s: { step: string; status: string }) => [s.step, s.status]));
    assert.deepEqual(status, { node: 'ok', addon: 'ok', doctor: 'ok', verify: 'ok', 'bench-normlab-fp32': 'ok', 'gloo-2-ranks': 'ok' });
    const verify = steps.find((s: { step: string }) => s.step === 'verify').detail;
    assert.match(verify, /^\d+ passed, 0 failed/);
    assert.ok(figures['bench-normlab-fp32'].tokensPerSecond > 0);
    assert.match(figures['bench-normlab-fp32'].backend.version, /libtorch/);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
