// What a training run shows on the terminal: a live bar on a TTY, a plain
// line every tenth of the run (and at each evaluation) otherwise, nothing with --quiet.
import cliProgress from 'cli-progress';
import type { StepReport } from '../train/trainer.ts';

export interface Progress {
  start(total: number, from: number): void;
  step(report: StepReport): void;
  stop(): void;
}

const fmt = (x: number, digits = 4) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

export function progressFor(mode: { quiet?: boolean; tty: boolean }): Progress {
  if (mode.quiet) return { start() {}, step() {}, stop() {} };
  return mode.tty ? barProgress() : lineProgress();
}

function barProgress(): Progress {
  const bar = new cliProgress.SingleBar({
    format: 'step {value}/{total} |{bar}| loss {loss} | {tps} tok/s | val {val} | ETA {eta_formatted}',
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  let val = '-';
  return {
    start: (total, from) => bar.start(total, from, { loss: '-', tps: '-', val }),
    step: (r) => {
      if (r.validation) val = fmt(r.validation.loss);
      bar.update(r.step, { loss: fmt(r.loss), tps: Math.round(r.tokensPerSecond), val });
    },
    stop: () => bar.stop(),
  };
}

function lineProgress(): Progress {
  let total = 0;
  return {
    start: (t, from) => {
      total = t;
      if (from > 0) console.log(`resuming at step ${from}/${t}`);
    },
    step: (r) => {
      const every = Math.max(1, Math.round(total / 10));
      if (r.step % every !== 0 && !r.validation && r.step !== total) return;
      const val = r.validation ? `  val loss ${fmt(r.validation.loss)}  ppl ${fmt(r.validation.perplexity, 2)}` : '';
      console.log(`step ${r.step}/${total}  loss ${fmt(r.loss)}  lr ${r.lr.toExponential(2)}  grad ${fmt(r.gradNorm)}  ${Math.round(r.tokensPerSecond)} tok/s${val}`);
    },
    stop: () => {},
  };
}
