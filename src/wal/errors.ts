// Bad input for the WAL directory readers: a missing or unreadable
// directory, no segments, a file of the wrong size, an invalid option.
// The message names the path or value at fault and fits on one line.

export class WalDirError extends Error {
  constructor(
    message: string,
    /** Short machine-readable cause, e.g. "not-found", "bad-size". */
    readonly code: string,
  ) {
    super(message);
    this.name = 'WalDirError';
  }
}
