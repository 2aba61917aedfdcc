// A tokenizer worker thread: chunks in, token ids out (buffers transferred, not copied).
import { parentPort, workerData } from 'node:worker_threads';
import { type ChunkOptions, tokenizeChunk } from './chunk.ts';
import { DataError } from './errors.ts';
import type { Chunk } from './read.ts';
import { type AnyTokenizerInfo, loadBatchTokenizer } from './tokenizers.ts';

const options = workerData as ChunkOptions & { tokenizer: AnyTokenizerInfo };
const tok = await loadBatchTokenizer(options.tokenizer);

parentPort!.on('message', async ({ id, chunk }: { id: number; chunk: Chunk }) => {
  try {
    const result = await tokenizeChunk(chunk, tok, options);
    parentPort!.postMessage({ id, result }, [result.tokens.buffer as ArrayBuffer, result.lengths.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id, error: (e as Error).message, dataError: e instanceof DataError });
  }
});
