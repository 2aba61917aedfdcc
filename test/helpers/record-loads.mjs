// `node --import ./record-loads.mjs …`: appends the URL of every module the
// process loads to the file named by RECORD_LOADS (test/cli-startup.test.ts).
import { register } from 'node:module';

register('data:text/javascript,' + encodeURIComponent(`
import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.RECORD_LOADS, url + '\\n');
  return next(url, context);
}`));
