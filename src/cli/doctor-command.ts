// normlab doctor's command line, declared without loading the backends
// (doctor.ts, TensorFlow.js), which are imported only when the command runs.
import type { Command } from 'commander';
import type { SetExitCode } from './main.ts';

export function registerDoctor(program: Command, setExitCode: SetExitCode): void {
  program
    .command('doctor')
    .description('which backends load here, their versions and matMul GFLOP/s, the CUDA libraries and GPU a GPU backend needs, and which named tokenizers (t5) are found')
    .option('--json', 'print one JSON object')
    .action(async (flags: { json?: boolean }) => {
      const { doctorCommand } = await import('./doctor.ts');
      await doctorCommand(flags, setExitCode);
    });
}
