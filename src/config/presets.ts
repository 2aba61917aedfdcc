// Model presets: the papers' LLaMA sizes (PAPERS.md; vocab 32000 for the T5
// tokenizer) and tiny CPU sizes for the 256-symbol byte tokenizer.
import type { ModelConfig } from '../model/config.ts';

function dims(vocab_size: number, d_model: number, ffn_dim: number, n_layers: number, n_heads: number): Partial<ModelConfig> {
  return { vocab_size, d_model, ffn_dim, n_layers, n_heads };
}

export const PRESETS: Record<string, Partial<ModelConfig>> = {
  //            vocab   hidden  ffn  blocks heads
  '71m':  dims(32000,  512, 1368, 12,  8),
  '130m': dims(32000,  768, 2048, 12, 12),
  '250m': dims(32000,  768, 2560, 24, 16),
  '350m': dims(32000, 1024, 2736, 24, 16),
  '1b':   dims(32000, 2048, 5461, 24, 32),
  nano:   dims(256,     64,  192,  2,  4),
  tiny:   dims(256,    128,  384,  2,  4),
  mini:   dims(256,    128,  384,  6,  4),
  // nano's width at 12 blocks: depth effects (variance growth, dead layers) on a CPU.
  deep:   dims(256,     64,  192, 12,  4),
};

export const PRESET_NAMES = Object.keys(PRESETS);
