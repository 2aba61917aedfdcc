// TensorBoard event files: TFRecord framing (length, masked CRC-32C of the
// length, data, masked CRC-32C of the data) around tensorflow.Event protobufs.
// Scalars are simple_value summaries; the run's config goes in as hparams
// plugin summaries, so TensorBoard's HParams tab compares runs of a sweep.
import { crc32c } from '@aws-crypto/crc32c';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import {
  EventProto, EXPERIMENT_TAG, HParamsPluginDataProto, HPARAMS_PLUGIN, NULL_TENSOR, SESSION_END_TAG, SESSION_START_TAG, SESSION_STATUS,
} from './protos.ts';

/** TFRecord's checksum: CRC-32C rotated right by 15 bits plus a constant (tensorflow/core/lib/hash/crc32c.h). */
export function maskedCrc(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export function tfRecord(data: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(data.length), 0);
  head.writeUInt32LE(maskedCrc(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc(data), 0);
  return Buffer.concat([head, data, tail]);
}

export type HParamValue = string | number | boolean;
export type SessionStatus = keyof typeof SESSION_STATUS;

export interface ExperimentInfo {
  hparams: { name: string; values: HParamValue[] }[];
  metrics: { tag: string; dataset: 'training' | 'validation' }[];
}

let fileCount = 0;

/** One events file in `dir`, named as TensorFlow names them, so TensorBoard finds and orders it. */
export class EventWriter {
  private chunks: Buffer[] = [];
  private size = 0;

  private constructor(private readonly fd: number, readonly file: string) {}

  static open(dir: string): EventWriter {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}.${process.pid}.${fileCount++}`);
    const w = new EventWriter(openSync(file, 'wx'), file);
    w.event({ wall_time: Date.now() / 1000, file_version: 'brain.Event:2' });
    return w;
  }

  scalar(tag: string, step: number, value: number, wallTime = Date.now() / 1000): void {
    this.event({ wall_time: wallTime, step, summary: { value: [{ tag, simple_value: value }] } });
  }

  /**
   * Marks a (re)start at `step`: TensorBoard drops what earlier files hold from
   * this step on (a run resumed from a checkpoint rewrites those steps).
   */
  restart(step: number): void {
    this.event({ wall_time: Date.now() / 1000, step, session_log: { status: 1 } });
  }

  sessionStart(hparams: Record<string, HParamValue>, startTime: number, modelUri = ''): void {
    const values = Object.fromEntries(Object.entries(hparams).map(([k, v]) => [k, structValue(v)]));
    this.hparams(SESSION_START_TAG, { session_start_info: { hparams: values, start_time_secs: startTime, model_uri: modelUri } }, startTime);
  }

  sessionEnd(status: SessionStatus, endTime: number): void {
    this.hparams(SESSION_END_TAG, { session_end_info: { status: SESSION_STATUS[status], end_time_secs: endTime } }, endTime);
  }

  experiment(info: ExperimentInfo, time: number): void {
    this.hparams(EXPERIMENT_TAG, {
      experiment: {
        time_created_secs: time,
        hparam_infos: info.hparams.map((h) => ({
          name: h.name,
          type: typeof h.values[0] === 'number' ? 3 : typeof h.values[0] === 'boolean' ? 2 : 1,
          domain_discrete: { values: h.values.map(structValue) },
        })),
        metric_infos: info.metrics.map((m) => ({ name: { group: '', tag: m.tag }, dataset_type: m.dataset === 'training' ? 1 : 2 })),
      },
    }, time);
  }

  flush(): void {
    if (this.size === 0) return;
    writeSync(this.fd, Buffer.concat(this.chunks));
    this.chunks = [];
    this.size = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }

  private hparams(tag: string, data: object, wallTime: number): void {
    const content = HParamsPluginDataProto.encode(HParamsPluginDataProto.fromObject({ version: 0, ...data })).finish();
    this.event({
      wall_time: wallTime,
      summary: { value: [{ tag, metadata: { plugin_data: { plugin_name: HPARAMS_PLUGIN, content } }, tensor: NULL_TENSOR }] },
    });
  }

  private event(e: object): void {
    const record = tfRecord(EventProto.encode(EventProto.fromObject(e)).finish());
    this.chunks.push(record);
    this.size += record.length;
    if (this.size > 1 << 20) this.flush();
  }
}

function structValue(v: HParamValue): object {
  return typeof v === 'number' ? { number_value: v } : typeof v === 'boolean' ? { bool_value: v } : { string_value: v };
}
