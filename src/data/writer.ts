// Writing a dataset's splits (layout in dataset.ts): buffered appends, shards
// cut at document boundaries, everything fsynced before meta.json is written.

import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { faultPoint } from '../train/faults.ts';
import { join } from 'node:path';
import { bytesPerToken, type Dtype, indexName, shardName, type Split, type SplitRecord, type TokenArray } from './dataset.ts';

const BUFFER_BYTES = 1 << 20;

/** An append-only file with a write buffer (documents are small, one write per document would be a syscall each) and a running sha256. */
class AppendFile {
  private readonly fd: number;
  private readonly buffer = new Uint8Array(BUFFER_BYTES);
  private readonly hash = createHash('sha256');
  private used = 0;

  constructor(path: string) {
    this.fd = openSync(path, 'wx'); // never over an existing file: the folder is new
  }

  append(bytes: Uint8Array): void {
    this.hash.update(bytes);
    if (this.used + bytes.length > this.buffer.length) this.flush();
    if (bytes.length > this.buffer.length) writeAll(this.fd, bytes);
    else {
      this.buffer.set(bytes, this.used);
      this.used += bytes.length;
    }
  }

  /** Flushes, fsyncs and closes; returns the sha256 of everything appended. */
  close(): string {
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    return this.hash.digest('hex');
  }

  private flush(): void {
    writeAll(this.fd, this.buffer.subarray(0, this.used));
    this.used = 0;
  }
}

export function writeAll(fd: number, bytes: Uint8Array): void {
  faultPoint('data-write');
  let written = 0;
  while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
}

/** Writes a whole file and fsyncs it (meta.json: it must not reach the disk before the shards it describes). */
export function writeFileDurably(path: string, text: string): void {
  const file = new AppendFile(path);
  file.append(Buffer.from(text));
  file.close();
}

/** One split's shards and document index. */
export class SplitWriter {
  private readonly shards: { file: string; tokens: number; sha256: string }[] = [];
  private shard?: AppendFile;
  private readonly index: AppendFile;
  private readonly offset = new DataView(new ArrayBuffer(8));
  private tokens = 0;
  private documents = 0;

  constructor(private readonly dir: string, private readonly split: Split, private readonly dtype: Dtype, private readonly shardTokens: number) {
    this.index = new AppendFile(join(dir, indexName(split)));
  }

  /** One document's tokens, its end-of-document id included. */
  add(document: TokenArray): void {
    const current = this.shards.at(-1);
    if (!this.shard || (current!.tokens > 0 && current!.tokens + document.length > this.shardTokens)) this.nextShard();
    this.writeOffset();
    this.shard!.append(new Uint8Array(document.buffer, document.byteOffset, document.length * bytesPerToken(this.dtype)));
    this.shards.at(-1)!.tokens += document.length;
    this.tokens += document.length;
    this.documents++;
  }

  finish(): SplitRecord {
    if (!this.shard) this.nextShard(); // an empty split still has its (empty) shard
    this.writeOffset();
    this.closeShard();
    return { documents: this.documents, tokens: this.tokens, shards: this.shards, indexSha256: this.index.close() };
  }

  private nextShard(): void {
    if (this.shard) this.closeShard();
    const file = shardName(this.split, this.shards.length);
    this.shard = new AppendFile(join(this.dir, file));
    this.shards.push({ file, tokens: 0, sha256: '' });
  }

  private closeShard(): void {
    this.shards.at(-1)!.sha256 = this.shard!.close();
  }

  private writeOffset(): void {
    this.offset.setBigUint64(0, BigInt(this.tokens), true);
    this.index.append(new Uint8Array(this.offset.buffer));
  }
}
