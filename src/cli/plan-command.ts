// normlab plan's command line, declared without loading the memory planner
// (plan.ts, TensorFlow.js), which is imported only when the command runs.
import type { Command } from 'commander';
import { backendOption, collect } from './common.ts';

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('parameter count, memory per device (weights, AdamW state, gradients, activations) and tokens per step; exit 2 when it cannot fit')
    .argument('<config>', 'run config (YAML)')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .addOption(backendOption())
    .action(async (file: string, flags: { set: string[]; backend: string }) => {
      const { planCommand } = await import('./plan.ts');
      await planCommand(file, flags);
    });
}
