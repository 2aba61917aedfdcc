// normlab plan <config> [--set key=value …] [--backend …]: what a training
// step of the config needs on this device, and whether it fits.
import { loadRunConfig } from '../config/load.ts';
import type { RunConfig } from '../config/schema.ts';
import { checkFitsBackend, deviceMemory, type MemoryPlan, planMemory } from '../train/memory.ts';
import { resolvePrecision } from '../train/precision.ts';
import { torchDevice } from '../backend/torch/index.ts';
import { startBackend } from './common.ts';

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const thousands = (n: number) => Math.round(n).toLocaleString('en');

/** The plan as printed lines: sizes, then memory per device by part, then the device's limit. */
export function describePlan(config: RunConfig, backend: string): string[] {
  const plan: MemoryPlan = planMemory(config, backend);
  const { bytes: b } = plan;
  const device = torchDevice();
  const limit = deviceMemory(backend, device);
  const t = config.train;
  return [
    `${config.name}: ${thousands(plan.parameters)} parameters; ${thousands(plan.tokensPerStep)} tokens per step ` +
      `(batch ${t.batch_size} × seq ${t.seq_len}, ${plan.microBatches} micro-batch${plan.microBatches === 1 ? '' : 'es'} of ${plan.microBatch})`,
    `backend  ${backend}${device ? ` on ${device}` : ''}, precision ${resolvePrecision(config, backend, device)}`,
    'memory per device (estimate):',
    `  weights      ${gib(b.weights)}`,
    `  AdamW state  ${gib(b.optimizer)}`,
    `  gradients    ${gib(b.gradients)}${plan.microBatches > 1 ? ' (the running sum and one micro-batch\'s)' : ''}`,
    ...(b.workspace > 0 ? [`  workspace    ${gib(b.workspace)} (the tfjs backward pass's copies)`] : []),
    `  activations  ${gib(b.activations)} at micro-batch ${plan.microBatch}`,
    `  total        ${gib(b.total)}` + (limit ? ` of ${gib(limit.bytes)} (${limit.what}): ${b.total <= limit.bytes ? 'fits' : 'does NOT fit'}` : ' (device memory unknown)'),
  ];
}

/** normlab plan: its flags are declared in plan-command.ts, which imports this module only when the command runs. */
export async function planCommand(file: string, flags: { set: string[]; backend: string }): Promise<void> {
  const config = loadRunConfig(file, flags.set);
  const backend = await startBackend(flags.backend);
  for (const line of describePlan(config, backend.name)) console.log(line);
  checkFitsBackend(config, backend.name);
}
