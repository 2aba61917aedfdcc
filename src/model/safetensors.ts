// The safetensors format (MODEL.md §4): an 8-byte little-endian header length,
// a JSON header {key: {dtype, shape, data_offsets}}, then the raw tensor bytes.
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

export class SafetensorsError extends Error {}

export function decodeSafetensors(bytes: Uint8Array, file: string): {
  tensors: Map<string, NamedArray>;
  metadata: Record<string, string>;
} {
  const fail = (why: string): never => {
    throw new SafetensorsError(`${file}: not a valid safetensors file: ${why}`);
  };
  if (bytes.length < 8) fail(`only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) fail(`header length ${headerLength} exceeds the file size`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    return fail('the header is not JSON');
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  for (const [key, entry] of Object.entries(header)) {
    if (key === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (dtype !== 'F32') fail(`${key} has dtype ${dtype}; normlab reads F32 only`);
    const count = shape.reduce((a, b) => a * b, 1);
    const [begin, end] = offsets;
    if (end - begin !== count * 4 || dataStart + end > bytes.length) fail(`${key}: data_offsets [${begin}, ${end}] do not fit shape [${shape}]`);
    // Copy so the array is aligned and independent of the file buffer.
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(key, { shape, data });
  }
  return { tensors, metadata };
}

export function readSafetensors(file: string) {
  return decodeSafetensors(readFileSync(file), file);
}

export function encodeSafetensors(tensors: Map<string, NamedArray>, metadata: Record<string, string> = {}): Uint8Array {
  const keys = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const key of keys) {
    const { shape, data } = tensors.get(key)!;
    header[key] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const key of keys) {
    const { data } = tensors.get(key)!;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    position += data.byteLength;
  }
  return out;
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
