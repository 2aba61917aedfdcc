// Preloaded into a child process (node --import): prints its peak resident memory on exit, for memory-bound tests.
import { writeSync } from 'node:fs';

process.on('exit', () => writeSync(2, `\npeak-rss-kib ${process.resourceUsage().maxRSS}\n`));
