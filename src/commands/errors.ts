// Errors a command reports as one readable line and a non-zero exit.

/** Bad usage: unknown option, missing argument, malformed value. Exit 2. */
export class UsageError extends Error {}

/** The command could not do its job (missing directory, bad file, ...). Exit 1. */
export class CommandError extends Error {}
