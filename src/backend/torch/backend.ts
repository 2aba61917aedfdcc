// The tfjs backend over the addon: tfjs data ids map to native tensor handles.
// Values written from JS stay in JS until a kernel first needs them.
import * as tf from '@tensorflow/tfjs';
import type { AttrValue, NativeMemory, TorchAddon } from './addon.ts';

type Values = Float32Array | Int32Array | Uint8Array;

interface TensorData {
  /** The native tensor, or -1 while only `values` hold the data. */
  handle: number;
  values?: Values;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

/** Output dtype codes of native/src/addon.cc. */
const DTYPES: tf.DataType[] = ['float32', 'int32', 'bool'];

export class TorchBackend extends tf.KernelBackend {
  private readonly data: tf.DataStorage<TensorData>;

  constructor(private readonly addon: TorchAddon) {
    super();
    this.data = new tf.DataStorage(this, tf.engine());
  }

  /** Runs a native kernel on `inputs` (undefined for an absent optional input). */
  run(kernel: number, inputs: (tf.TensorInfo | undefined)[], attrs: AttrValue[]): tf.TensorInfo[] {
    const count = this.addon.run(kernel, inputs.map((t) => (t ? this.handle(t.dataId) : -1)), attrs);
    const out = this.addon.outputs;
    const infos: tf.TensorInfo[] = [];
    for (let i = 0, p = 1; i < count; i++) {
      const handle = out[p]!, dtype = DTYPES[out[p + 1]!]!, rank = out[p + 2]!;
      const shape = Array.from(out.subarray(p + 3, p + 3 + rank));
      p += 3 + rank;
      const dataId = {};
      this.data.set(dataId, { handle, shape, dtype, refCount: 1 });
      infos.push({ dataId, shape, dtype });
    }
    return infos;
  }

  /** The native handle of a tensor, uploading its values on first use. */
  private handle(dataId: tf.DataId): number {
    const d = this.data.get(dataId);
    if (d.handle < 0) {
      if (d.dtype === 'string' || d.dtype === 'complex64') throw new Error(`the torch backend has no ${d.dtype} tensors`);
      d.handle = this.addon.upload(d.values!, d.shape, d.dtype);
      d.values = undefined;
    }
    return d.handle;
  }

  override write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId {
    const dataId = {};
    this.move(dataId, values, shape, dtype, 1);
    return dataId;
  }

  override move(dataId: tf.DataId, values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType, refCount: number): void {
    this.data.set(dataId, { handle: -1, values: values as Values, shape, dtype, refCount });
  }

  override readSync(dataId: tf.DataId): Values {
    const d = this.data.get(dataId);
    return d.handle < 0 ? d.values! : this.addon.download(d.handle);
  }

  override async read(dataId: tf.DataId): Promise<Values> {
    return this.readSync(dataId);
  }

  override refCount(dataId: tf.DataId): number {
    return this.data.has(dataId) ? this.data.get(dataId).refCount : 0;
  }

  override incRef(dataId: tf.DataId): void {
    this.data.get(dataId).refCount++;
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    if (!this.data.has(dataId)) return true;
    const d = this.data.get(dataId);
    d.refCount--;
    if (!force && d.refCount > 0) return false;
    if (d.handle >= 0) this.addon.release(d.handle);
    this.data.delete(dataId);
    return true;
  }

  override numDataIds(): number {
    return this.data.numDataIds();
  }

  /** Native memory; tfjs's own numBytes counts tensors, not what they share or cache. */
  override memory(): { unreliable: boolean } & NativeMemory {
    return { unreliable: false, ...this.addon.memory() };
  }

  override async time(f: () => void): Promise<tf.BackendTimingInfo> {
    const start = performance.now();
    f();
    return { kernelMs: performance.now() - start };
  }

  override floatPrecision(): 32 {
    return 32;
  }

  override dispose(): void {
    this.addon.emptyCache();
  }
}
