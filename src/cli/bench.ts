// normlab bench [config] [--backend …] [--steps N] [--json]
import { AddonUnavailable, type NativeMemory, setTorchPrecision, useTorch } from '../backend/torch/index.ts';
import { benchmark, type BenchResult, matMulRate } from '../bench/bench.ts';
import { loadRunConfig } from '../config/load.ts';
import type { RunConfig } from '../config/schema.ts';
import { checkFitsBackend } from '../train/memory.ts';
import { applyPrecision, resolvePrecision } from '../train/precision.ts';
import { startBackend } from './common.ts';

export interface BenchFlags {
  set: string[];
  backend: string;
  steps: number;
  warmup: number;
  diagnosticSteps: number;
  peak?: number;
  json?: boolean;
}

interface Peak {
  gflops: number;
  how: string;
}

/**
 * The machine's float32 peak, for MFU: the best GEMM rate libtorch's BLAS
 * reaches here (measured before the benchmarked backend starts), else that
 * backend's own.
 */
async function machinePeak(flags: BenchFlags, config: RunConfig): Promise<Peak | undefined> {
  if (flags.peak) return { gflops: flags.peak, how: 'given with --peak' };
  try {
    const torch = await useTorch('auto');
    // In the run's precision: a bf16 step's MFU is against the bf16 peak.
    const precision = resolvePrecision(config, 'torch', torch.device);
    setTorchPrecision(precision);
    return { gflops: matMulRate(2048), how: `torch matMul 2048² in ${precision}, ${torch.description}` };
  } catch (e) {
    if (!(e instanceof AddonUnavailable)) throw e;
    return undefined;
  }
}

const MiB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const thousands = (n: number) => Math.round(n).toLocaleString('en');

function describe(config: RunConfig, backend: string, result: BenchResult, peak: Peak, flags: BenchFlags): string[] {
  const { model: m, train: t } = config;
  const mem = result.memory;
  const native = mem.backend as Partial<NativeMemory>;
  return [
    `${config.name}: ${thousands(result.parameters)} parameters (d ${m.d_model}, ${m.n_layers} blocks, ${m.n_heads} heads, ffn ${m.ffn_dim}, vocab ${m.vocab_size}), ` +
      `batch ${t.batch_size} × seq ${t.seq_len} = ${thousands(result.tokensPerStep)} tokens/step` +
      (t.micro_batch_size ? ` in micro-batches of ${t.micro_batch_size}` : ''),
    `backend  ${backend}`,
    `step     ${result.msPerStep.toFixed(1)} ms (median of ${flags.steps}, after ${flags.warmup} warm-up)  →  ${thousands(result.tokensPerSecond)} tokens/s`,
    `compute  ${(result.flopsPerToken / 1e6).toFixed(2)} MFLOP/token (6·N + 12·L·d·T, N without the embedding)  →  ${result.gflopsPerSecond.toFixed(1)} GFLOP/s, ` +
      `MFU ${((100 * result.gflopsPerSecond) / peak.gflops).toFixed(1)}% of ${peak.gflops.toFixed(0)} GFLOP/s (${peak.how})`,
    result.diagnostics
      ? `diagnostics  ${result.diagnostics.msPerStep.toFixed(1)} ms for a step with them (median of ${flags.diagnosticSteps}): ` +
        `${(100 * result.diagnostics.overhead).toFixed(1)}% of step time at diag_every ${t.diag_every}`
      : 'diagnostics  not measured (--diagnostic-steps 0)',
    `memory   peak RSS ${MiB(mem.peakRssBytes)}; live tensors ${MiB(mem.tensorBytes)}` +
      (native.allocatedBytes !== undefined
        ? ` (native: ${MiB(native.allocatedBytes)} allocated, peak ${MiB(native.peakAllocatedBytes!)}, ${MiB(native.cachedBytes!)} cached for reuse)`
        : '') +
      `; ${mem.tensorsBefore} tensors before the steps, ${mem.tensorsAfter} after`,
  ];
}

/** normlab bench: its flags are declared in bench-command.ts, which imports this module only when the command runs. */
export async function benchCommand(file: string, flags: BenchFlags): Promise<void> {
  const config = loadRunConfig(file, flags.set);
  const measured = await machinePeak(flags, config);
  const backend = await startBackend(flags.backend);
  checkFitsBackend(config, backend.name);
  const precision = applyPrecision(config, backend.name);
  const peak = measured ?? { gflops: matMulRate(1024), how: `${backend.name} matMul 1024²` };
  const result = benchmark(config, { steps: Math.max(1, flags.steps), warmup: flags.warmup, diagnosticSteps: flags.diagnosticSteps });
  if (flags.json) {
    const mfu = result.gflopsPerSecond / peak.gflops;
    console.log(JSON.stringify({ config: config.name, backend, precision, ...result, peak, mfu }));
  } else {
    for (const line of describe(config, `${backend.name} (${backend.version}), precision ${precision}`, result, peak, flags)) console.log(line);
  }
}
