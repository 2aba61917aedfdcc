// normlab sweep's command line, and its internal sweep-worker and sweep-task:
// their flags, declared without loading the sweep machinery (sweep.ts,
// TensorFlow.js), which is imported only when one of them runs.
import { type Command, Option } from 'commander';
import { backendOption, collect } from './common.ts';
import type { SetExitCode } from './main.ts';
import type { SweepFlags, TaskFlags, WorkerFlags } from './sweep.ts';

const staleAfterOption = () =>
  new Option('--stale-after <seconds>', 'take over a run whose worker has not sent a heartbeat for this long').default('300');

export function registerSweep(program: Command, setExitCode: SetExitCode): void {
  program
    .command('sweep')
    .description('run every run of a sweep file; rerunning it completes only what is missing')
    .argument('<sweep>', 'sweep file (YAML, a subset of the W&B sweep format)')
    .option('--dry-run', 'print the plan (one line per run: overrides, config hash, status), or with --executor slurm the sbatch script, and exit')
    .option('--status', 'print where each run stands, with its Slurm task when it was submitted to Slurm, and exit')
    .addOption(new Option('--executor <executor>', 'where runs train: worker processes here, or a Slurm job array').choices(['local', 'slurm']).default('local'))
    .option('--workers <n>', 'local: worker processes on this machine (one GPU each where there are GPUs)', '1')
    .option('--partition <name>', 'slurm: the partition to submit to')
    .option('--gpus-per-task <n>', 'slurm: GPUs per run; N > 1 trains each run as N data-parallel ranks (srun, one task per GPU) (default: none requested)')
    .option('--time <limit>', 'slurm: time limit per task (HH:MM:SS, D-HH:MM:SS, minutes)')
    .option('--array-parallel <n>', 'slurm: at most this many tasks at once (%N)')
    .option('--sbatch-arg <arg>', 'slurm: another #SBATCH line, e.g. --sbatch-arg=--mem=16G (repeatable)', collect, [])
    .addOption(backendOption())
    .addOption(staleAfterOption())
    .action(async (file: string, flags: SweepFlags, command: Command) => {
      const { sweepCommand } = await import('./sweep.ts');
      await sweepCommand(file, flags, command, setExitCode);
    });

  program
    .command('sweep-worker', { hidden: true })
    .description('(internal) one worker of `normlab sweep`: trains runs of a plan until none is left')
    .argument('<plan>', 'plan.json written by normlab sweep')
    .requiredOption('--worker <id>', 'this worker\'s name in claims and output')
    .requiredOption('--since <iso-time>', 'when the sweep started: runs that failed since are not retried')
    .addOption(backendOption())
    .addOption(staleAfterOption())
    .action(async (file: string, flags: WorkerFlags) => {
      const { sweepWorkerCommand } = await import('./sweep.ts');
      await sweepWorkerCommand(file, flags, setExitCode);
    });

  program
    .command('sweep-task', { hidden: true })
    .description('(internal) one Slurm array task of `normlab sweep --executor slurm`: trains exactly one run of a plan')
    .argument('<plan>', 'plan.json written by normlab sweep')
    .requiredOption('--run <id>', 'the run to train (the submitted script maps SLURM_ARRAY_TASK_ID to it)')
    .addOption(backendOption())
    .addOption(staleAfterOption())
    .action(async (file: string, flags: TaskFlags) => {
      const { sweepTaskCommand } = await import('./sweep.ts');
      await sweepTaskCommand(file, flags, setExitCode);
    });
}
