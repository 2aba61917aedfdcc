// Text corpora. A new corpus is one file exporting a TextSource factory and one
// line in `textSources`.

import { brownSource } from './brown.ts';
import { unknownName } from './errors.ts';

export interface TextSource {
  /** Stable name; part of the token cache key. */
  id: string;
  describe(): string;
  /** Every document, in a fixed order (the train/val split is by index into it). */
  documents(): Iterable<string>;
}

export const textSources: Record<string, () => TextSource> = {
  brown: brownSource,
};

export function textSource(name: string): TextSource {
  // hasOwn, not `in`: names like 'constructor' must not reach Object.prototype.
  if (!Object.hasOwn(textSources, name)) throw unknownName('corpus', name, Object.keys(textSources));
  return textSources[name]();
}
