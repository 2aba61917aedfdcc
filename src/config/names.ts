// Names that become folder names, file names and words of generated scripts
// (run, sweep), and the check that a path normlab writes stays under its root.
// A name is one safe path component, so it can neither climb out of runs_dir
// (`../x`, `/abs`), nest folders (`a/b`), nor carry shell syntax into an sbatch script.
import path from 'node:path';

/** Longest accepted name: a run id adds `-<10 hex>`, and file systems cap a component at 255 bytes. */
export const MAX_NAME_LENGTH = 100;

// A leading letter or digit: no hidden folder (`.cache`), no `.`/`..`, nothing read as a flag (`-x`).
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Why `name` is not one safe path component, or null when it is. */
export function nameProblem(name: string): string | null {
  if (name.length > MAX_NAME_LENGTH) return `expected at most ${MAX_NAME_LENGTH} characters, got ${name.length.toLocaleString('en')}`;
  if (!SAFE_NAME.test(name)) return `expected one folder name of letters, digits, ".", "_" and "-", starting with a letter or digit, got ${JSON.stringify(name)}`;
  return null;
}

/** Raised when a path normlab is about to write lies outside the root it belongs under. */
export class PathEscapeError extends Error {
  readonly exitCode = 2;
}

/** `target` resolved, after checking it lies strictly inside `root` (a last defence behind nameProblem). */
export function pathUnder(root: string, target: string): string {
  const resolvedRoot = path.resolve(root);
  const resolved = path.resolve(resolvedRoot, target);
  const rel = path.relative(resolvedRoot, resolved);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new PathEscapeError(`${resolved}: refusing to write outside ${resolvedRoot}`);
  }
  return resolved;
}
