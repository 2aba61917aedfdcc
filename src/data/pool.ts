// Tokenization in worker threads (the LLaMA tokenizer manages ~2 MB/s a core).
// Chunks go to the least busy worker; callers await results in submission
// order and cap how many are in flight, which bounds memory.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ChunkOptions, type ChunkResult, tokenizeChunk } from './chunk.ts';
import { DataError } from './errors.ts';
import type { Chunk } from './read.ts';
import { type AnyTokenizerInfo, loadBatchTokenizer } from './tokenizers.ts';

export interface PoolOptions extends ChunkOptions {
  tokenizer: AnyTokenizerInfo;
}

export interface TokenizerPool {
  /** How many chunks may be in flight: more would only queue, holding memory. */
  readonly capacity: number;
  run(chunk: Chunk): Promise<ChunkResult>;
  close(): Promise<void>;
}

/** Below this much source text a worker's start-up (~0.5 s: tsx and the BPE tables) costs more than it saves. */
const INLINE_BELOW_BYTES = 16 << 20;
/**
 * RSS a worker adds (tsx, the tokenizer's tables, a chunk or two, GC slack), as
 * measured preparing 1 GiB (byte, gpt2) and 256 MiB (llama, its word cache full)
 * of synthetic C4; the main thread holds ~250 MiB. The budget keeps a prepare under 1 GiB.
 */
const WORKER_MIB: Record<string, number> = { byte: 110, gpt2: 160, llama: 200, file: 250 };
const WORKERS_BUDGET_MIB = 700;

export function defaultWorkers(sourceBytes: number, tokenizer: AnyTokenizerInfo): number {
  if (sourceBytes < INLINE_BELOW_BYTES) return 0;
  const cores = tokenizer.file ? fileWorkers() : availableParallelism();
  return Math.max(1, Math.min(cores, Math.floor(WORKERS_BUDGET_MIB / WORKER_MIB[tokenizer.file ? 'file' : tokenizer.name])));
}

/**
 * A tokenizer.json encodes each batch on the library's Rust thread pool (one
 * per process, shared by every worker thread): it gets the cores, and the
 * workers (JSON parsing, framing) are few, so the two do not oversubscribe.
 */
function fileWorkers(): number {
  return Math.max(1, Math.floor(availableParallelism() / 2));
}

/** Sizes the Rust pool before the library first starts it (it reads the variable once). */
export function sizeRustPool(): void {
  process.env.RAYON_NUM_THREADS ??= String(availableParallelism());
}

/** workers = 0 tokenizes on this thread. */
export async function startPool(opts: PoolOptions, workers: number): Promise<TokenizerPool> {
  if (opts.tokenizer.file) sizeRustPool();
  if (workers === 0) {
    const tok = await loadBatchTokenizer(opts.tokenizer);
    return { capacity: 1, run: (chunk) => tokenizeChunk(chunk, tok, opts), close: async () => {} };
  }
  return new WorkerPool(opts, workers);
}

// Workers run TypeScript through tsx, registered inside the worker (bin/normlab registers it only on the main thread).
const TSX_API = import.meta.resolve('tsx/esm/api');
const WORKER = new URL('./worker.ts', import.meta.url).href;
const BOOTSTRAP = `import(${JSON.stringify(TSX_API)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER)}); });`;

interface Pending {
  resolve(result: ChunkResult): void;
  reject(error: Error): void;
}

type Reply = { id: number; result: ChunkResult } | { id: number; error: string; dataError: boolean };

class WorkerPool implements TokenizerPool {
  readonly capacity: number;
  private readonly workers: { worker: Worker; pending: Map<number, Pending>; exited: boolean }[];
  private nextId = 0;

  constructor(opts: PoolOptions, count: number) {
    this.capacity = 2 * count + 1;
    this.workers = Array.from({ length: count }, () => {
      const slot = { worker: new Worker(BOOTSTRAP, { eval: true, workerData: opts, execArgv: [] }), pending: new Map<number, Pending>(), exited: false };
      slot.worker.on('message', (reply: Reply) => this.settle(slot.pending, reply));
      slot.worker.on('error', (e) => failAll(slot.pending, e));
      slot.worker.on('exit', (code) => {
        slot.exited = true; // a chunk posted to it now would never be answered
        failAll(slot.pending, new Error(`tokenizer worker exited with code ${code}`));
      });
      return slot;
    });
  }

  run(chunk: Chunk): Promise<ChunkResult> {
    const live = this.workers.filter((w) => !w.exited);
    if (live.length === 0) return Promise.reject(new Error('every tokenizer worker has exited'));
    const slot = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, chunk }, 'jsonl' in chunk ? [chunk.jsonl.buffer as ArrayBuffer] : []);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }

  private settle(pending: Map<number, Pending>, reply: Reply): void {
    const p = pending.get(reply.id)!;
    pending.delete(reply.id);
    if ('result' in reply) p.resolve(reply.result);
    else p.reject(reply.dataError ? new DataError(reply.error) : new Error(reply.error));
  }
}

function failAll(pending: Map<number, Pending>, error: Error): void {
  for (const p of pending.values()) p.reject(error);
  pending.clear();
}
