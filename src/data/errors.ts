/** A data problem the user can act on: the message names the corpus, tokenizer, file (and line) or setting. */
export class DataError extends Error {
  /** The CLI's exit code for bad input (README: exit codes). */
  readonly exitCode = 2;
}

/** "'x' is not a known corpus; known: a, b" */
export function unknownName(kind: string, name: string, known: string[]): DataError {
  return new DataError(`'${name}' is not a known ${kind}; known: ${known.join(', ')}`);
}
