// Runs as TensorBoard sees them: metric rows become tags (scalars by their
// store name, per-block diagnostics as layers/<metric>/<block>), the resolved
// config becomes the session's hparams. Used by `normlab export tensorboard`
// and by training with output.tensorboard (events written as metrics are).
import type { RunConfig } from '../config/schema.ts';
import { flatten } from '../report/facts.ts';
import type { MetricBatch, MetricSink } from '../store/store.ts';
import { EventWriter, type HParamValue, type SessionStatus } from './writer.ts';

const LAYER_TAGS: Record<string, string> = { grad_norm: 'grad_norm', output_var: 'output_variance' };

/** `train/loss`, `layers/grad_norm/03` (blocks zero-padded so they sort), `params/grad_norm/<parameter>`. */
export function metricTag(kind: 'scalar' | 'layer' | 'param', name: string, index: number | string | null, layers: number): string {
  if (kind === 'scalar') return name;
  if (kind === 'layer') return `layers/${LAYER_TAGS[name] ?? name}/${String(index).padStart(Math.max(2, String(layers).length), '0')}`;
  return `params/${name}/${index}`;
}

/** Every config key (dotted) but the output paths, as hparams; lists as their JSON text. */
export function hparamsOf(config: RunConfig): Record<string, HParamValue> {
  return Object.fromEntries(Object.entries(flatten(config)).flatMap(([k, v]): [string, HParamValue][] => {
    if (k.startsWith('output.') || v === undefined || v === null) return [];
    return [[k, typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string' ? v : JSON.stringify(v)]];
  }));
}

export function sessionStatus(status: string): SessionStatus {
  return status === 'finished' ? 'success' : status === 'running' ? 'running' : status === 'diverged' || status === 'failed' ? 'failure' : 'unknown';
}

/** Writes a run's events while it trains: every metric batch the store commits, then flushed to disk. */
export class LiveEvents implements MetricSink {
  private constructor(private readonly writer: EventWriter, private readonly layers: number) {}

  static open(runDir: string, config: RunConfig): LiveEvents {
    const writer = EventWriter.open(runDir);
    writer.sessionStart(hparamsOf(config), Date.now() / 1000, runDir);
    writer.flush();
    return new LiveEvents(writer, config.model.n_layers);
  }

  /** A resumed run rewrites the steps after its checkpoint: TensorBoard drops what earlier files hold from there. */
  resumeAfter(step: number): void {
    this.writer.restart(step + 1);
  }

  write(batch: MetricBatch): void {
    for (const r of batch.scalars ?? []) this.writer.scalar(metricTag('scalar', r.name, null, this.layers), r.step, r.value);
    for (const r of batch.layers ?? []) this.writer.scalar(metricTag('layer', r.name, r.layer, this.layers), r.step, r.value);
    for (const r of batch.params ?? []) this.writer.scalar(metricTag('param', r.name, r.param, this.layers), r.step, r.value);
    this.writer.flush();
  }

  /** TensorBoard keeps a session's first end status for good: a stopped run (it will resume) gets none. */
  end(status: string): void {
    if (status !== 'killed') this.writer.sessionEnd(sessionStatus(status), Date.now() / 1000);
    this.writer.close();
  }
}
