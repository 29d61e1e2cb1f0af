// Turn whatever went wrong in a session into the PgError the client gets.
import { AcceptorError, type AcceptorErrorCode } from '../acceptor/errors.js';
import { ConnectionClosed } from '../pq/connection.js';
import { PgError, SqlState } from '../pq/errors.js';
import { ProtocolError } from '../protocol/errors.js';
import { InvalidIdError } from '../timeline/ids.js';
import { TimelineFailedError } from '../timeline/timeline.js';

const ACCEPTOR_SQLSTATE: Record<AcceptorErrorCode, string> = {
  'protocol-version': SqlState.FEATURE_NOT_SUPPORTED,
  'system-id-mismatch': SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE,
  'wal-seg-size-mismatch': SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE,
  'invalid-wal-seg-size': SqlState.INVALID_PARAMETER_VALUE,
  'tenant-mismatch': SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE,
  'timeline-mismatch': SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE,
  'pg-timeline-mismatch': SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE,
  'wrong-sender': SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE,
  'out-of-order': SqlState.PROTOCOL_VIOLATION,
  'wal-gap': SqlState.PROTOCOL_VIOLATION,
  'bad-request': SqlState.PROTOCOL_VIOLATION,
};

/** SQLSTATE for a storage error: disk full, else I/O error. */
export function ioSqlState(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return SqlState.DISK_FULL;
  return SqlState.IO_ERROR;
}

/** The error to send for `err`, or null when the client is already gone. */
export function toPgError(err: unknown, severity: 'ERROR' | 'FATAL' = 'FATAL'): PgError | null {
  if (err instanceof ConnectionClosed) return null;
  if (err instanceof PgError) return err;
  if (err instanceof ProtocolError) return new PgError({ severity, code: SqlState.PROTOCOL_VIOLATION, message: `invalid ${err.message}` });
  if (err instanceof AcceptorError) return new PgError({ severity, code: ACCEPTOR_SQLSTATE[err.code] ?? SqlState.PROTOCOL_VIOLATION, message: err.message });
  if (err instanceof InvalidIdError) return new PgError({ severity, code: SqlState.INVALID_PARAMETER_VALUE, message: err.message });
  if (err instanceof TimelineFailedError) return new PgError({ severity, code: ioSqlState(err.cause), message: err.message });
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) {
    return new PgError({ severity, code: ioSqlState(e), message: e.message });
  }
  return new PgError({ severity, code: SqlState.INTERNAL_ERROR, message: `internal error: ${(err as Error)?.message ?? String(err)}` });
}
