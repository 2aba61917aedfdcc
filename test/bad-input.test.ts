// Issue 7: malformed configs, sweep files, CLI flags and data files each give
// one paragraph naming the key or file, exit code 2, and write nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { test } from 'node:test';
import { BIN, tempDir } from './helpers/cli.ts';

interface Case {
  name: string;
  /** Files to create in the case's folder: name → content. */
  files?: Record<string, string | Buffer>;
  args: string[];
  /** What the message must name (a key, a file, a flag). */
  names: RegExp;
}

const GOOD_MODEL = 'model: { preset: nano, n_layers: 2 }\n';
const OUT = 'output: { runs_dir: runs }\n';
const config = (name: string, yaml: string, names: RegExp): Case => ({ name, files: { 'c.yaml': yaml }, args: ['train', 'c.yaml'], names });
const sweep = (name: string, yaml: string, names: RegExp): Case =>
  ({ name, files: { 'base.yaml': GOOD_MODEL + OUT, 's.yaml': yaml }, args: ['sweep', 's.yaml', '--dry-run'], names });
const data = (name: string, file: string, content: string | Buffer, names: RegExp, extra: string[] = []): Case =>
  ({ name, files: { [file]: content }, args: ['data', 'prepare', file, '--tokenizer', 'byte', '--out', 'ds', '--quiet', ...extra], names });

const cases: Case[] = [
  // Configs.
  config('unknown top-level key', GOOD_MODEL + 'trian: { steps: 3 }\n' + OUT, /c\.yaml.*trian.*unknown key/),
  config('unknown train key', GOOD_MODEL + 'train: { stepz: 3 }\n' + OUT, /train\.stepz.*unknown key/),
  config('unknown model key', 'model: { preset: nano, colour: red }\n' + OUT, /model\.colour/),
  config('unknown data key', GOOD_MODEL + 'data: { tokeniser: byte }\n' + OUT, /data\.tokeniser/),
  config('unknown output key', GOOD_MODEL + 'output: { dir: runs }\n', /output\.dir/),
  config('bad strategy name', 'model: { preset: nano, norm: prelm }\n' + OUT, /model\.norm.*prelm/),
  config('bad norm type', 'model: { preset: nano, norm_type: batchnorm }\n' + OUT, /model\.norm_type/),
  config('bad residual scale', 'model: { preset: nano, residual_scale: rezero }\n' + OUT, /model\.residual_scale/),
  config('bad init scheme', 'model: { preset: nano, init: xavier }\n' + OUT, /model\.init/),
  config('unknown preset', 'model: { preset: huge }\n' + OUT, /model\.preset.*huge/),
  config('negative steps', GOOD_MODEL + 'train: { steps: -5 }\n' + OUT, /train\.steps.*-5/),
  config('zero steps', GOOD_MODEL + 'train: { steps: 0 }\n' + OUT, /train\.steps/),
  config('fractional batch', GOOD_MODEL + 'train: { batch_size: 2.5 }\n' + OUT, /train\.batch_size/),
  config('string lr', GOOD_MODEL + 'train: { lr: fast }\n' + OUT, /train\.lr.*fast/),
  config('zero lr', GOOD_MODEL + 'train: { lr: 0 }\n' + OUT, /train\.lr/),
  config('beta2 of 1', GOOD_MODEL + 'train: { beta2: 1 }\n' + OUT, /train\.beta2/),
  config('negative weight decay', GOOD_MODEL + 'train: { weight_decay: -0.1 }\n' + OUT, /train\.weight_decay/),
  config('min lr ratio above 1', GOOD_MODEL + 'train: { min_lr_ratio: 2 }\n' + OUT, /train\.min_lr_ratio/),
  config('d_model not divisible by heads', 'model: { preset: nano, d_model: 100, n_heads: 3 }\n' + OUT, /model\.n_heads.*divisible/),
  config('odd head dim', 'model: { preset: nano, d_model: 60, n_heads: 4 }\n' + OUT, /model\.n_heads.*even/),
  config('mix_alpha outside [0,1]', 'model: { preset: nano, norm: mix, mix_alpha: 1.5 }\n' + OUT, /model\.mix_alpha/),
  config('none with qk_norm', 'model: { preset: nano, norm: none, qk_norm: true }\n' + OUT, /model\.qk_norm/),
  config('ngpt with gpas', 'model: { preset: nano, norm: ngpt, gpas: true }\n' + OUT, /model\.gpas/),
  config('gpas on hybridnorm', 'model: { preset: nano, norm: hybridnorm, gpas: true }\n' + OUT, /model\.gpas/),
  config('incomplete model', 'model: { d_model: 64 }\n' + OUT, /model\.(n_layers|n_heads|ffn_dim)/),
  config('model is a list', 'model: [1, 2]\n' + OUT, /model/),
  config('vocab too small for tokenizer', 'model: { preset: nano }\ndata: { tokenizer: gpt2 }\n' + OUT, /model\.vocab_size.*50257/),
  config('unknown tokenizer', GOOD_MODEL + 'data: { tokenizer: bpe }\n' + OUT, /data\.tokenizer/),
  config('YAML syntax error', 'model: { preset: nano\ntrain: [\n', /c\.yaml.*YAML/),
  config('empty file', '', /c\.yaml/),
  config('missing data source file', GOOD_MODEL + 'data: { source: nowhere.jsonl }\n' + OUT, /nowhere\.jsonl/),
  // Names become folder names and words of sbatch scripts (issue 18, items 1 and 2).
  config('name climbing out of runs_dir', 'name: ../../../x\n' + GOOD_MODEL + OUT, /c\.yaml.*name.*"\.\.\/\.\.\/\.\.\/x"/),
  config('absolute name', 'name: /tmp/elsewhere\n' + GOOD_MODEL + OUT, /c\.yaml.*name.*\/tmp\/elsewhere/),
  config('name nesting folders', 'name: a/b\n' + GOOD_MODEL + OUT, /name.*"a\/b"/),
  config('name ..', 'name: ".."\n' + GOOD_MODEL + OUT, /name.*"\.\."/),
  config('name with shell syntax', 'name: "x$(touch PWNED)"\n' + GOOD_MODEL + OUT, /name.*touch PWNED/),
  config('a 1 MB name (ENAMETOOLONG)', `name: ${'n'.repeat(1 << 20)}\n` + GOOD_MODEL + OUT, /name: expected at most 100 characters, got 1,048,576/),
  { name: '--set name=../../../x', files: { 'c.yaml': GOOD_MODEL + OUT }, args: ['train', 'c.yaml', '--set', 'name=../../../x'], names: /name.*\.\.\/\.\.\/\.\.\/x/ },
  { name: 'config file name unusable as a run name', files: { 'a b.yaml': GOOD_MODEL + OUT }, args: ['train', 'a b.yaml'], names: /a b\.yaml.*name.*config file's name.*set name:/ },
  { name: 'sweep file name with shell syntax', files: { 'base.yaml': GOOD_MODEL + OUT, 'evil$(touch PWNED).yaml': 'base: base.yaml\nmethod: grid\nparameters: { train.seed: { values: [0, 1] } }\n' },
    args: ['sweep', 'evil$(touch PWNED).yaml', '--executor', 'slurm', '--dry-run'], names: /evil\$\(touch PWNED\)\.yaml.*name.*sweep file's name.*set name:/ },
  sweep('sweep name with a slash', 'name: ../up\nbase: base.yaml\nmethod: grid\nparameters: { train.seed: { values: [0] } }\n', /s\.yaml.*name.*"\.\.\/up"/),
  // Unbounded or unusable inputs and outputs (issue 18, item 9 and the stack-trace cases).
  config('steps: 1e300', GOOD_MODEL + 'train: { steps: 1e300 }\n' + OUT, /c\.yaml.*train\.steps.*1e\+300/),
  config('seq_len beyond int32', GOOD_MODEL + 'train: { seq_len: 1e12 }\n' + OUT, /train\.seq_len/),
  config('a billion-laughs YAML', 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n' + GOOD_MODEL, /c\.yaml.*billion laughs/),
  { name: 'output.db is a folder', files: { 'c.yaml': GOOD_MODEL + 'output: { runs_dir: runs, db: dbdir }\n', 'dbdir/.keep': '' }, args: ['train', 'c.yaml'], names: /output\.db.*dbdir.*folder/ },
  { name: 'output.db is a text file', files: { 'c.yaml': GOOD_MODEL + 'output: { runs_dir: runs, db: notes.db }\n', 'notes.db': 'my notes\n' }, args: ['train', 'c.yaml'], names: /notes\.db is not an SQLite database.*normlab db repair/ },
  { name: 'runs_dir is a file', files: { 'c.yaml': GOOD_MODEL + 'output: { runs_dir: afile }\n', afile: 'x' }, args: ['train', 'c.yaml'], names: /output\.runs_dir.*afile is a file/ },
  config('runs_dir under /proc', GOOD_MODEL + 'output: { runs_dir: /proc/normlab-runs }\n', /output\.runs_dir.*\/proc\/normlab-runs.*virtual file system/),
  sweep('a grid of 20,000 runs', `base: base.yaml\nmethod: grid\nparameters:\n  train.seed: { values: [${Array.from({ length: 200 }, (_, i) => i)}] }\n  train.lr: { values: [${Array.from({ length: 100 }, (_, i) => (i + 1) / 1e4)}] }\n`, /s\.yaml.*parameters: the grid has 20,000 runs \(200 × 100\).*at most 10,000/),
  sweep('random search with run_cap 10,000,000', 'base: base.yaml\nmethod: random\nrun_cap: 10000000\nparameters: { train.lr: { distribution: uniform, min: 0.001, max: 0.01 } }\n', /s\.yaml.*run_cap: 10,000,000 runs/),
  { name: '--workers 100000', files: { 'base.yaml': GOOD_MODEL + OUT, 's.yaml': 'base: base.yaml\nmethod: grid\nparameters: { train.seed: { values: [0] } }\n' }, args: ['sweep', 's.yaml', '--workers', '100000'], names: /--workers 100000: at most \d+/ },
  // --set and other CLI flags.
  { name: '--set unknown key', files: { 'c.yaml': GOOD_MODEL + OUT }, args: ['train', 'c.yaml', '--set', 'train.stepz=2'], names: /train\.stepz/ },
  { name: '--set without =', files: { 'c.yaml': GOOD_MODEL + OUT }, args: ['train', 'c.yaml', '--set', 'train.steps'], names: /train\.steps/ },
  { name: '--set wrong type', files: { 'c.yaml': GOOD_MODEL + OUT }, args: ['train', 'c.yaml', '--set', 'train.steps=many'], names: /train\.steps.*many/ },
  { name: '--set bad strategy', files: { 'c.yaml': GOOD_MODEL + OUT }, args: ['train', 'c.yaml', '--set', 'model.norm=postln'], names: /model\.norm/ },
  { name: 'missing config file', args: ['train', 'absent.yaml'], names: /absent\.yaml/ },
  { name: 'no config and no --resume', args: ['train'], names: /config/ },
  { name: 'unknown backend', files: { 'c.yaml': GOOD_MODEL + OUT }, args: ['train', 'c.yaml', '--backend', 'gpu'], names: /--backend.*gpu/ },
  { name: 'unknown option', files: { 'c.yaml': GOOD_MODEL + OUT }, args: ['train', 'c.yaml', '--stepz', '3'], names: /--stepz/ },
  { name: 'unknown command', args: ['trian', 'c.yaml'], names: /trian/ },
  { name: '--resume of no run', args: ['train', '--resume', 'runs/ghost-123'], names: /ghost-123/ },
  { name: 'verify of a folder without cases', files: { 'empty/.keep': '' }, args: ['verify', 'empty'], names: /empty/ },
  { name: 'analyze of no run', args: ['analyze', 'nowhere'], names: /nowhere/ },
  { name: 'analyze --samples 0', args: ['analyze', 'nowhere', '--samples', '0'], names: /--samples/ },
  // Sweep files.
  sweep('sweep unknown method', 'base: base.yaml\nmethod: bayes\nparameters: { train.seed: { values: [0] } }\n', /s\.yaml.*method/),
  sweep('sweep unknown config key', 'base: base.yaml\nmethod: grid\nparameters: { train.stpes: { values: [1] } }\n', /s\.yaml.*train\.stpes/),
  sweep('sweep missing base', 'base: nope.yaml\nmethod: grid\nparameters: { train.seed: { values: [0] } }\n', /nope\.yaml/),
  sweep('sweep unknown distribution', 'base: base.yaml\nmethod: random\nrun_cap: 2\nparameters: { train.lr: { distribution: normalish, min: 0.1, max: 1 } }\n', /train\.lr.*distribution/),
  sweep('sweep random without run_cap', 'base: base.yaml\nmethod: random\nparameters: { train.lr: { distribution: uniform, min: 0.001, max: 0.01 } }\n', /run_cap/),
  sweep('sweep value of wrong type', 'base: base.yaml\nmethod: grid\nparameters: { train.steps: { values: [ten] } }\n', /train\.steps/),
  sweep('sweep unknown top-level key', 'base: base.yaml\nmethod: grid\nparamaters: { train.seed: { values: [0] } }\n', /paramaters/),
  // Data files.
  data('empty data file', 'empty.jsonl', '', /empty\.jsonl/),
  data('line that is not JSON', 'bad.jsonl', '{"text": "fine"}\n{"text": broken\n', /bad\.jsonl:2: not valid JSON/),
  data('missing text field', 'nofield.jsonl', '{"text": "a"}\n{"body": "b"}\n', /nofield\.jsonl:2: no "text" field/),
  data('text field not a string', 'num.jsonl', '{"text": 5}\n', /num\.jsonl:1:/),
  data('truncated gzip', 'cut.json.gz', gzipSync(Buffer.from('{"text": "hello"}\n'.repeat(200))).subarray(0, 40), /cut\.json\.gz/),
  data('NUL byte under the byte tokenizer', 'nul.txt', 'a\u0000b', /nul\.txt/),
  data('missing data file', 'present.txt', 'x', /absent\.txt/, ['absent.txt']),
  data('unknown text field flag target', 'f.jsonl', '{"text": "a"}\n', /f\.jsonl.*content/, ['--text-field', 'content']),
];

function run(args: string[], cwd: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, FORCE_COLOR: '0' } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test(`${cases.length} malformed inputs: exit 2, one paragraph naming the key or file, nothing written`, async () => {
  assert.ok(cases.length >= 50);
  const failures: string[] = [];
  const check = async (c: Case) => {
    const dir = tempDir('normlab-bad-');
    for (const [file, content] of Object.entries(c.files ?? {})) {
      mkdirSync(join(dir, file, '..'), { recursive: true });
      writeFileSync(join(dir, file), content);
    }
    const before = new Set(readdirSync(dir));
    const r = await run(c.args, dir);
    const message = r.stderr.trim();
    const problems = [
      r.code !== 2 && `exit ${r.code}`,
      !c.names.test(message.replace(/\n/g, ' ')) && `message does not match ${c.names}`,
      /\n\s+at /.test(message) && 'stack trace',
      message.split(/\n\s*\n/).length > 1 && 'more than one paragraph',
      readdirSync(dir).some((f) => !before.has(f)) && `wrote ${readdirSync(dir).filter((f) => !before.has(f))}`,
      existsSync(join(dir, 'runs')) && 'created runs/',
    ].filter(Boolean);
    if (problems.length) failures.push(`${c.name}: ${problems.join(', ')}\n    ${message.slice(0, 400)}`);
  };
  const queue = [...cases];
  await Promise.all([0, 1].map(async () => { for (let c; (c = queue.shift());) await check(c); }));
  assert.deepEqual(failures, [], failures.join('\n'));
});

