/** The command line was wrong: the tool prints the message and the usage, and exits with 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * A failure the tool expects (the database cannot be reached, the table is missing, nothing was found):
 * it prints the message alone, which says what to do, and exits with 1.
 */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
}
