// Config errors a user can act on: which file, which dotted key, what was expected.
import type { ZodError, ZodIssue } from 'zod';
import { keysAt } from './schema.ts';

/** One thing wrong with a config: `key` is a dotted path, null for the file as a whole. */
export interface ConfigProblem {
  key: string | null;
  detail: string;
}

/** Every way a config can be refused; the CLI exits with `exitCode` (2: usage error). */
export class ConfigError extends Error {
  readonly exitCode = 2;

  constructor(readonly source: string, readonly problems: ConfigProblem[]) {
    const parts = problems.map((p) => (p.key ? `${p.key}: ${p.detail}` : p.detail));
    super(`${source}: ${parts.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Zod's issues as problems; `prefix` is where the parsed value sits in the config. */
export function zodProblems(error: ZodError, input: unknown, prefix: string[] = []): ConfigProblem[] {
  return error.issues.flatMap((issue) => issueProblems(issue, input, prefix));
}

function issueProblems(issue: ZodIssue, input: unknown, prefix: string[]): ConfigProblem[] {
  const path = [...prefix, ...issue.path.map(String)];
  const key = path.length > 0 ? path.join('.') : null;
  const got = describe(valueAt(input, issue.path));
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({
        key: [...path, k].join('.'),
        detail: `unknown key (expected one of ${(keysAt(path) ?? []).join(', ')})`,
      }));
    case 'invalid_type':
      return [{
        key,
        detail: issue.received === 'undefined'
          ? `missing (expected ${typeName(issue.expected)})`
          : `expected ${typeName(issue.expected)}, got ${got}`,
      }];
    case 'invalid_enum_value':
      return [{ key, detail: `expected one of ${issue.options.join(', ')}, got ${got}` }];
    case 'too_small':
      if (issue.type !== 'number') break;
      return [{ key, detail: `expected a number ${issue.inclusive ? '≥' : '>'} ${issue.minimum}, got ${got}` }];
    case 'too_big':
      if (issue.type !== 'number') break;
      return [{ key, detail: `expected a number ${issue.inclusive ? '≤' : '<'} ${issue.maximum}, got ${got}` }];
    case 'not_finite':
      return [{ key, detail: `expected a finite number, got ${got}` }];
    case 'custom':
      return [{ key, detail: issue.message }];
  }
  return [{ key, detail: `${issue.message}, got ${got}` }];
}

// Zod names types as JavaScript does (enums as 'a' | 'b'); a YAML user thinks in mappings and lists.
function typeName(t: string): string {
  if (t.includes(' | ')) return `one of ${t.replaceAll("'", '').split(' | ').join(', ')}`;
  return t === 'object' ? 'a mapping' : t === 'array' ? 'a list' : t;
}

function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (v !== null && typeof v === 'object') return 'a mapping';
  return String(v);
}

/** The yaml package refuses documents whose aliases expand explosively ("billion laughs") with a ReferenceError. */
export function aliasBomb(e: unknown): ConfigProblem | null {
  if (!(e instanceof ReferenceError) || !/alias/i.test(e.message)) return null;
  return { key: null, detail: 'its YAML aliases expand beyond any sane size (a "billion laughs" document); write the values out' };
}
