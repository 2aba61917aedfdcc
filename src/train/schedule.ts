// Linear warm-up, then cosine decay to min_lr_ratio·lr (the Mix-LN / GaLore recipe).
import type { TrainConfig } from '../config/schema.ts';

export function learningRate(step: number, t: Pick<TrainConfig, 'lr' | 'warmup_steps' | 'steps' | 'min_lr_ratio'>): number {
  if (t.warmup_steps > 0 && step <= t.warmup_steps) return (t.lr * step) / t.warmup_steps;
  const decaySteps = Math.max(1, t.steps - t.warmup_steps);
  const progress = Math.min(1, (step - t.warmup_steps) / decaySteps);
  const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
  return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * cosine);
}
