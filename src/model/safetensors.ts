// The safetensors format (MODEL.md §4): an 8-byte little-endian header length,
// a JSON header {key: {dtype, shape, data_offsets}}, then the raw tensor bytes.
// Files are streamed: written header first, then one tensor at a time with
// positional writes of at most `chunkBytes`, and read back tensor by tensor
// into each tensor's own array, hashing the byte stream on the way. No file is
// ever held whole in memory, so files beyond 2 GiB (the 350M and 1B presets'
// weights and optimizer moments) work and memory stays at one tensor.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

/** A tensor to write: its shape, and its values when the writer reaches it (one at a time). */
export interface TensorSource {
  shape: number[];
  values(): Float32Array | Promise<Float32Array>;
}

export class SafetensorsError extends Error {
  readonly exitCode = 2;
}

/** 64 MiB: large enough for disk speed, small next to any tensor worth streaming. */
export const DEFAULT_CHUNK_BYTES = 64 << 20;

const sha256 = () => createHash('sha256');
const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** The header bytes and data offsets for tensors written in sorted key order. */
function header(shapes: [string, number[]][], metadata: Record<string, string>): { bytes: Buffer; dataBytes: number } {
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  let offset = 0;
  for (const [key, shape] of shapes) {
    const length = count(shape) * 4;
    json[key] = { dtype: 'F32', shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  let text = JSON.stringify(json);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  text += ' '.repeat((8 - ((8 + Buffer.byteLength(text)) % 8)) % 8);
  const bytes = Buffer.alloc(8 + Buffer.byteLength(text));
  bytes.writeBigUInt64LE(BigInt(bytes.length - 8), 0);
  bytes.write(text, 8);
  return { bytes, dataBytes: offset };
}

/** The size of the file writeSafetensors would write. */
export function safetensorsSize(shapes: [string, number[]][], metadata: Record<string, string> = {}): number {
  const { bytes, dataBytes } = header(shapes, metadata);
  return bytes.length + dataBytes;
}

/** Positional writes of at most chunkBytes each, every byte also fed to the hash. */
function writeAt(fd: number, bytes: Uint8Array, position: number, hash: Hash, chunkBytes: number): number {
  for (let done = 0; done < bytes.length;) {
    const chunk = bytes.subarray(done, Math.min(bytes.length, done + chunkBytes));
    let written = 0;
    while (written < chunk.length) written += writeSync(fd, chunk, written, chunk.length - written, position + done + written);
    hash.update(chunk);
    done += chunk.length;
  }
  return position + bytes.length;
}

/**
 * Writes tensors (keys sorted) as one safetensors file, fsynced, fetching each
 * tensor's values only when its turn comes; returns the file's sha256 and size.
 */
export async function writeSafetensors(
  file: string, tensors: Map<string, TensorSource>, metadata: Record<string, string> = {}, chunkBytes = DEFAULT_CHUNK_BYTES,
): Promise<{ sha256: string; bytes: number }> {
  const keys = [...tensors.keys()].sort();
  const head = header(keys.map((k) => [k, tensors.get(k)!.shape]), metadata);
  const hash = sha256();
  const fd = openSync(file, 'w');
  try {
    let position = writeAt(fd, head.bytes, 0, hash, chunkBytes);
    for (const key of keys) {
      const source = tensors.get(key)!;
      const data = await source.values();
      if (data.length !== count(source.shape)) throw new SafetensorsError(`${file}: ${key} has ${data.length} values for shape [${source.shape}]`);
      position = writeAt(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position, hash, chunkBytes);
    }
    fsyncSync(fd);
    return { sha256: hash.digest('hex'), bytes: position };
  } finally {
    closeSync(fd);
  }
}

interface Entry {
  key: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Positional reads of at most chunkBytes into `into`, hashed; fails on a short file. */
function readAt(fd: number, into: Uint8Array, position: number, hash: Hash, chunkBytes: number, file: string): void {
  for (let done = 0; done < into.length;) {
    const n = readSync(fd, into, done, Math.min(chunkBytes, into.length - done), position + done);
    if (n === 0) throw new SafetensorsError(`${file}: not a valid safetensors file: ends early, at byte ${position + done}`);
    hash.update(into.subarray(done, done + n));
    done += n;
  }
}

/** Reads and checks the header: every entry F32, its offsets matching its shape and lying inside the file. */
function readHeader(fd: number, file: string, size: number, hash: Hash, chunkBytes: number): { entries: Entry[]; metadata: Record<string, string>; dataStart: number } {
  const fail = (why: string): never => {
    throw new SafetensorsError(`${file}: not a valid safetensors file: ${why}`);
  };
  if (size < 8) fail(`only ${size} bytes`);
  const lengthBytes = new Uint8Array(8);
  readAt(fd, lengthBytes, 0, hash, chunkBytes, file);
  const headerLength = Number(Buffer.from(lengthBytes).readBigUInt64LE(0));
  if (headerLength > size - 8) fail(`header length ${headerLength} exceeds the file size ${size}`);
  const headerBytes = new Uint8Array(headerLength);
  readAt(fd, headerBytes, 8, hash, chunkBytes, file);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(Buffer.from(headerBytes).toString('utf8'));
  } catch {
    return fail('the header is not JSON');
  }
  const dataStart = 8 + headerLength;
  const entries: Entry[] = [];
  let metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(json)) {
    if (key === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (dtype !== 'F32') fail(`${key} has dtype ${dtype}; normlab reads F32 only`);
    const [begin, end] = offsets;
    if (end - begin !== count(shape) * 4 || dataStart + end > size) fail(`${key}: data_offsets [${begin}, ${end}] do not fit shape [${shape}] in a file of ${size} bytes`);
    entries.push({ key, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin);
  entries.forEach((e, i) => i > 0 && e.begin < entries[i - 1]!.end && fail(`${e.key} overlaps ${entries[i - 1]!.key}`));
  return { entries, metadata, dataStart };
}

/** Hashes bytes [from, to) that belong to no tensor (gaps, trailing bytes), a chunk at a time. */
function hashRange(fd: number, from: number, to: number, hash: Hash, chunkBytes: number, file: string): void {
  for (let at = from; at < to; at += chunkBytes) readAt(fd, new Uint8Array(Math.min(chunkBytes, to - at)), at, hash, chunkBytes, file);
}

/**
 * Streams a safetensors file: each tensor is read into its own array and handed
 * to `visit` (which may turn it into a backend tensor and drop the array), in
 * file order; returns the metadata and the sha256 of the whole file.
 */
export function streamSafetensors(
  file: string, visit: (key: string, tensor: NamedArray) => void, chunkBytes = DEFAULT_CHUNK_BYTES,
): { metadata: Record<string, string>; sha256: string; keys: string[] } {
  const hash = sha256();
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const { entries, metadata, dataStart } = readHeader(fd, file, size, hash, chunkBytes);
    let at = dataStart;
    for (const { key, shape, begin, end } of entries) {
      hashRange(fd, at, dataStart + begin, hash, chunkBytes, file);
      const data = new Float32Array((end - begin) / 4);
      readAt(fd, new Uint8Array(data.buffer), dataStart + begin, hash, chunkBytes, file);
      visit(key, { shape, data });
      at = dataStart + end;
    }
    hashRange(fd, at, size, hash, chunkBytes, file);
    return { metadata, sha256: hash.digest('hex'), keys: entries.map((e) => e.key) };
  } finally {
    closeSync(fd);
  }
}

/** The sha256 of a file, read a chunk at a time. */
export function fileSha256(file: string, chunkBytes = DEFAULT_CHUNK_BYTES): string {
  const hash = sha256();
  const fd = openSync(file, 'r');
  try {
    hashRange(fd, 0, fstatSync(fd).size, hash, chunkBytes, file);
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** Every tensor of a (small) file as arrays. */
export function readSafetensors(file: string): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  const tensors = new Map<string, NamedArray>();
  const { metadata } = streamSafetensors(file, (key, t) => tensors.set(key, t));
  return { tensors, metadata };
}

/** Writes and fsyncs, so a later rename publishes complete bytes. */
export function writeFileDurably(file: string, bytes: Uint8Array | string): void {
  const fd = openSync(file, 'w');
  try {
    const buffer = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    let written = 0;
    while (written < buffer.length) written += writeSync(fd, buffer, written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// Sharding as Hugging Face does it: above `shardBytes` of tensor data, the
// tensors (in key order) are split greedily into `<base>-0000K-of-0000N.safetensors`,
// a new shard starting when the next tensor would overflow the current one, and
// `<base>.safetensors.index.json` maps every key to its shard. At or below it,
// one `<base>.safetensors` as before.

export interface ShardIndex {
  metadata: { total_size: number };
  weight_map: Record<string, string>;
}

/** Groups sorted keys into shards of at most shardBytes each (a larger tensor alone in its shard). */
export function planShards(shapes: Map<string, number[]>, base: string, shardBytes: number): Map<string, string[]> {
  const keys = [...shapes.keys()].sort();
  const bytes = (k: string) => count(shapes.get(k)!) * 4;
  const total = keys.reduce((sum, k) => sum + bytes(k), 0);
  if (total <= shardBytes) return new Map([[`${base}.safetensors`, keys]]);
  const groups: string[][] = [[]];
  let size = 0;
  for (const key of keys) {
    if (size + bytes(key) > shardBytes && groups.at(-1)!.length > 0) {
      groups.push([]);
      size = 0;
    }
    groups.at(-1)!.push(key);
    size += bytes(key);
  }
  const pad = (n: number) => String(n).padStart(5, '0');
  return new Map(groups.map((g, i) => [`${base}-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`, g]));
}

/** The bytes writeSharded would write (index included, roughly), for a free-space check. */
export function shardedSize(shapes: Map<string, number[]>, base: string, shardBytes: number, metadata: Record<string, string> = {}): number {
  const plan = planShards(shapes, base, shardBytes);
  let total = 0;
  for (const keys of plan.values()) total += safetensorsSize(keys.map((k) => [k, shapes.get(k)!]), metadata);
  return total + (plan.size > 1 ? 64 * shapes.size + 1024 : 0);
}

/** Writes tensors as one file or as HF shards with an index; returns each written file's sha256. */
export async function writeSharded(
  dir: string, base: string, tensors: Map<string, TensorSource>, opts: { shardBytes: number; metadata?: Record<string, string>; chunkBytes?: number },
): Promise<Record<string, string>> {
  const plan = planShards(new Map([...tensors].map(([k, t]) => [k, t.shape])), base, opts.shardBytes);
  const checksums: Record<string, string> = {};
  for (const [name, keys] of plan) {
    const written = await writeSafetensors(join(dir, name), new Map(keys.map((k) => [k, tensors.get(k)!])), opts.metadata, opts.chunkBytes);
    checksums[name] = written.sha256;
  }
  if (plan.size > 1) {
    const total = [...tensors.values()].reduce((sum, t) => sum + count(t.shape) * 4, 0);
    const weightMap = Object.fromEntries([...plan].flatMap(([name, keys]) => keys.map((k) => [k, name])).sort(([a], [b]) => (a < b ? -1 : 1)));
    const index: ShardIndex = { metadata: { total_size: total }, weight_map: weightMap };
    const bytes = Buffer.from(JSON.stringify(index, null, 2));
    writeFileDurably(join(dir, `${base}.safetensors.index.json`), bytes);
    checksums[`${base}.safetensors.index.json`] = createHash('sha256').update(bytes).digest('hex');
  }
  return checksums;
}

/** The files holding `base`'s tensors in dir, as listed by its index (sharded) or the single file. */
export function shardFiles(indexFile: string | undefined, base: string, readText: (name: string) => string): { files: string[]; index?: ShardIndex } {
  if (!indexFile) return { files: [`${base}.safetensors`] };
  let index: ShardIndex;
  try {
    index = JSON.parse(readText(indexFile));
  } catch {
    throw new SafetensorsError(`${indexFile}: not valid JSON`);
  }
  if (!index?.weight_map || typeof index.weight_map !== 'object') throw new SafetensorsError(`${indexFile}: no weight_map`);
  const files = [...new Set(Object.values(index.weight_map))];
  const bad = files.find((f) => typeof f !== 'string' || basename(f) !== f || !f.startsWith(`${base}-`));
  if (bad !== undefined) throw new SafetensorsError(`${indexFile}: weight_map names ${JSON.stringify(bad)}, not a ${base}-*.safetensors shard beside it`);
  return { files: files.sort(), index };
}
