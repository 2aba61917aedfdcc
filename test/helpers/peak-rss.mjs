// Preloaded into a child process (node --import): prints its peak resident memory on exit, for memory-bound tests.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  const u = process.resourceUsage();
  writeSync(2, `\npeak-rss-kib ${u.maxRSS} cpu-ms ${Math.round((u.userCPUTime + u.systemCPUTime) / 1000)}\n`);
});
