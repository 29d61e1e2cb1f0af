// Errors the replication side reports to its client as an ErrorResponse,
// with PostgreSQL's SQLSTATE and wording where PostgreSQL has one.
import type { Severity } from './pq.js';

/** The SQLSTATEs a walsender uses. */
export const ReplState = {
  FEATURE_NOT_SUPPORTED: '0A000',
  PROTOCOL_VIOLATION: '08P01',
  SYNTAX_ERROR: '42601',
  UNDEFINED_OBJECT: '42704',
  UNDEFINED_FILE: '58P01',
  IO_ERROR: '58030',
  INTERNAL_ERROR: 'XX000',
  DATA_CORRUPTED: 'XX001',
} as const;

export class ReplicationError extends Error {
  override readonly name = 'ReplicationError';
  readonly severity: Severity;
  readonly code: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(code: string, message: string, opts: { severity?: Severity; detail?: string; hint?: string } = {}) {
    super(message);
    this.code = code;
    this.severity = opts.severity ?? 'ERROR';
    this.detail = opts.detail;
    this.hint = opts.hint;
  }

  /** FATAL (or worse): the connection is closed after the ErrorResponse. */
  get fatal(): boolean {
    return this.severity === 'FATAL' || this.severity === 'PANIC';
  }
}

export const syntaxError = (message = 'syntax error'): ReplicationError => new ReplicationError(ReplState.SYNTAX_ERROR, message);
