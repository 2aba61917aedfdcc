// Drives a headless Chromium through the DevTools protocol to check an HTML
// report the way a reader's browser opens it: console errors, exceptions and
// requests are recorded, every canvas is checked for drawn pixels, a table
// header and a run are clicked, a filter is typed, and a screenshot is taken. The WebSocket client is a few
// lines over node:http (Node 20 has no global WebSocket without a flag).
//
//   node --import tsx scripts/chromium.ts docs/cpu-study/report.html docs/cpu-study-report.png
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find(existsSync);

type Message = { id?: number; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: { message: string }; sessionId?: string };

/** A minimal WebSocket client (RFC 6455: masked text frames out, unmasked frames in, any length, fragments joined). */
class Cdp {
  private buf: Buffer = Buffer.alloc(0);
  private parts: Buffer[] = [];
  private next = 1;
  private pending = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  private listeners: ((m: Message) => void)[] = [];

  private constructor(private readonly socket: Socket, head: Buffer) {
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    if (head.length) this.read(head);
  }

  static connect(url: string): Promise<Cdp> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const req = request({
        host: u.hostname, port: u.port, path: u.pathname,
        headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') },
      });
      req.on('upgrade', (_res, socket, head) => resolve(new Cdp(socket, head)));
      req.on('response', (res) => reject(new Error(`DevTools refused the WebSocket: HTTP ${res.statusCode}`)));
      req.on('error', reject);
      req.end();
    });
  }

  on(listener: (m: Message) => void): void {
    this.listeners.push(listener);
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.next++;
    this.frame(JSON.stringify({ id, method, params, ...(sessionId && { sessionId }) }));
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result ?? {})),
        reject,
      });
    });
  }

  close(): void {
    this.socket.destroy();
    for (const p of this.pending.values()) p.reject(new Error('DevTools connection closed'));
  }

  private frame(text: string): void {
    const payload = Buffer.from(text);
    const mask = randomBytes(4);
    const n = payload.length;
    const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    if (n >= 126 && n < 65536) { head[0] = 0x81; head[1] = 0x80 | 126; head.writeUInt16BE(n, 2); }
    if (n >= 65536) { head[0] = 0x81; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(n), 2); }
    for (let i = 0; i < n; i++) payload[i]! ^= mask[i & 3]!;
    this.socket.write(Buffer.concat([head, mask, payload]));
  }

  private read(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) { if (this.buf.length < 4) return; len = this.buf.readUInt16BE(2); off = 4; }
      if (len === 127) { if (this.buf.length < 10) return; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (this.buf.length < off + len) return;
      const opcode = this.buf[0]! & 0x0f;
      const fin = (this.buf[0]! & 0x80) !== 0;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (opcode === 0x8) { this.close(); return; }
      if (opcode !== 0x0 && opcode !== 0x1) continue; // pings and binary frames: Chromium sends neither here
      this.parts.push(Buffer.from(payload));
      if (!fin) continue;
      const m = JSON.parse(Buffer.concat(this.parts).toString('utf8')) as Message;
      this.parts = [];
      if (m.id !== undefined) { this.pending.get(m.id)?.resolve(m); this.pending.delete(m.id); }
      else this.listeners.forEach((l) => l(m));
    }
  }
}

export interface PageCheck {
  /** Console errors, uncaught exceptions and log entries of level error. */
  errors: string[];
  /** Requests other than the page itself, and requests that failed. */
  requests: string[];
  failed: string[];
  /** Every canvas: its id or nearest heading, and whether any pixel is drawn. */
  canvases: { where: string; drawn: boolean }[];
  /** The runs table's first column before and after a click on a header, and that header. */
  sort: { header: string; before: string[]; after: string[]; values: string[] };
  /** After a click on the first run: the rows highlighted, and the run the detail panel shows. */
  picked: { rows: string[]; detail: string };
  /** The runs left visible by the filter `filter`. */
  filtered: { filter: string; visible: string[] };
  screenshot: string;
  ms: number;
}

/** Finds every canvas and whether it has a non-transparent pixel. */
const CANVAS_CHECK = `(() => [...document.querySelectorAll('canvas')].map((c) => {
  const ctx = c.getContext('2d');
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let drawn = false;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) { drawn = true; break; }
  const box = c.closest('section');
  return { where: (box ? box.id : '') + ' / ' + (c.closest('figure')?.querySelector('figcaption')?.textContent ?? c.closest('.chart')?.id ?? c.className), drawn };
}))()`;

const RUNS_COLUMN = (k: number) => `[...document.querySelectorAll('#runs tbody tr')].map((tr) => tr.children[${k}].textContent)`;

async function launch(): Promise<{ proc: ChildProcess; url: string; profile: string }> {
  if (!CHROMIUM) throw new Error('no Chromium found (apt-get install chromium)');
  const profile = mkdtempSync(path.join(tmpdir(), 'normlab-chromium-'));
  const proc = spawn(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check', '--disable-extensions',
    '--disable-background-networking', '--disable-component-update', '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`Chromium did not start in 20 s:\n${text}`)), 20_000);
    proc.stderr!.on('data', (c: Buffer) => {
      text += c.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
      if (m) { clearTimeout(timer); resolve(m[1]!); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`Chromium exited (${code}):\n${text}`)); });
  });
  return { proc, url, profile };
}

/**
 * Opens each page in turn in one headless Chromium and checks it; `shots[i]`
 * is where page i's screenshot (the first 1280 × 900 CSS pixels) is written.
 */
export async function checkPages(pages: string[], shots: string[], sortHeader = 'val ppl', filter = 'model.norm=pre'): Promise<PageCheck[]> {
  const { proc, url, profile } = await launch();
  const cdp = await Cdp.connect(url);
  try {
    const out: PageCheck[] = [];
    for (const [i, page] of pages.entries()) out.push(await checkPage(cdp, page, shots[i]!, sortHeader, filter));
    return out;
  } finally {
    await cdp.send('Browser.close').catch(() => undefined);
    cdp.close();
    // The profile can only go once Chromium has let go of it.
    const exited = proc.exitCode !== null ? Promise.resolve() : new Promise((r) => proc.once('exit', r));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    if (proc.exitCode === null) proc.kill();
    await exited;
    clearTimeout(timer);
    // Chromium's helper processes may still be writing to the profile for a moment after it exits.
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    } catch {
      // A temporary folder left behind is not worth failing a check over.
    }
  }
}

async function checkPage(cdp: Cdp, file: string, shot: string, sortHeader: string, filter: string): Promise<PageCheck> {
  const t0 = Date.now();
  const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' }) as { targetId: string };
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true }) as { sessionId: string };
  const send = (method: string, params: Record<string, unknown> = {}) => cdp.send(method, params, sessionId);
  const pageUrl = pathToFileURL(path.resolve(file)).href;
  const errors: string[] = [], requests: string[] = [], failed: string[] = [];
  let loaded: () => void = () => undefined;
  const load = new Promise<void>((resolve) => { loaded = resolve; });
  cdp.on((m) => {
    if (m.sessionId !== sessionId) return;
    const p = m.params ?? {};
    if (m.method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert')) errors.push(`console.${p.type}: ${JSON.stringify(p.args)}`);
    if (m.method === 'Runtime.exceptionThrown') errors.push(`exception: ${JSON.stringify((p.exceptionDetails as { exception?: { description?: string } }).exception?.description ?? p.exceptionDetails)}`);
    if (m.method === 'Log.entryAdded' && (p.entry as { level: string }).level === 'error') errors.push(`log: ${(p.entry as { text: string }).text}`);
    if (m.method === 'Network.requestWillBeSent') {
      const u = (p.request as { url: string }).url;
      if (u !== pageUrl && !u.startsWith('data:')) requests.push(u);
    }
    if (m.method === 'Network.loadingFailed') failed.push(`${p.requestId}: ${p.errorText}`);
    if (m.method === 'Page.loadEventFired') loaded();
  });
  for (const domain of ['Page', 'Runtime', 'Log', 'Network']) await send(`${domain}.enable`);
  await send('Emulation.setDeviceMetricsOverride', { width: 1280, height: 900, deviceScaleFactor: 1, mobile: false });
  await send('Page.navigate', { url: pageUrl });
  await load;
  const evaluate = async <T>(expression: string): Promise<T> => {
    const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }) as { result: { value: T }; exceptionDetails?: unknown };
    if (r.exceptionDetails) throw new Error(`evaluating ${expression.slice(0, 60)}: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  };
  // The page sets data-ready once everything is drawn; a busy machine may take a while.
  let ready = false;
  for (let k = 0; k < 400 && !ready; k++) {
    ready = (await evaluate<string | undefined>('document.body.dataset.ready')) === 'true';
    if (!ready) await new Promise((r) => setTimeout(r, 50));
  }
  if (!ready) errors.push(`the page did not finish drawing in 20 s`);
  const canvases = await evaluate<{ where: string; drawn: boolean }[]>(CANVAS_CHECK);
  // A real click (mouse events at the header's place on screen), not a synthetic element.click().
  const k = await evaluate<number>(`[...document.querySelectorAll('#runs thead th')].findIndex((th) => th.textContent.replace(/[ ▲▼]+$/, '') === ${JSON.stringify(sortHeader)})`);
  const before = await evaluate<string[]>(RUNS_COLUMN(0));
  const box = await evaluate<{ x: number; y: number }>(`(() => { const th = document.querySelectorAll('#runs thead th')[${k}];
    th.scrollIntoView({ block: 'center' }); const r = th.getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()`);
  for (const type of ['mousePressed', 'mouseReleased']) await send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
  const after = await evaluate<string[]>(RUNS_COLUMN(0));
  const values = await evaluate<string[]>(RUNS_COLUMN(k));
  // The screenshot shows the page as opened (sorted, nothing picked or filtered yet).
  await evaluate('window.scrollTo(0, 0)');
  const png = await send('Page.captureScreenshot', { format: 'png' }) as { data: string };
  writeFileSync(shot, Buffer.from(png.data, 'base64'));
  const first = await evaluate<{ x: number; y: number }>(`(() => { const td = document.querySelector('#runs tbody tr td');
    td.scrollIntoView({ block: 'center' }); const r = td.getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()`);
  for (const type of ['mousePressed', 'mouseReleased']) await send('Input.dispatchMouseEvent', { type, x: first.x, y: first.y, button: 'left', clickCount: 1 });
  const picked = await evaluate<{ rows: string[]; detail: string }>(`({ rows: [...document.querySelectorAll('#runs tr.picked')].map((tr) => tr.children[0].textContent),
    detail: document.querySelector('#run-detail td').textContent })`);
  const visible = await evaluate<string[]>(`(() => { const input = document.getElementById('filter'); input.value = ${JSON.stringify(filter)};
    input.dispatchEvent(new Event('input')); return [...document.querySelectorAll('#runs tbody tr:not(.filtered)')].map((tr) => tr.children[0].textContent); })()`);
  await cdp.send('Target.closeTarget', { targetId });
  return { errors, requests, failed, canvases, sort: { header: sortHeader, before, after, values }, picked, filtered: { filter, visible }, screenshot: shot, ms: Date.now() - t0 };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [page, shot] = process.argv.slice(2);
  if (!page || !shot) {
    console.error('usage: node --import tsx scripts/chromium.ts <report.html> <screenshot.png>');
    process.exit(2);
  }
  const [r] = await checkPages([page], [shot]);
  console.log(JSON.stringify({ ...r, canvases: `${r!.canvases.filter((c) => c.drawn).length} of ${r!.canvases.length} drawn` }, null, 2));
}
