// Limits on the PostgreSQL-protocol listener, so that a flood of idle
// connections, a client that never finishes its start-up packet, or an
// over-long query cannot starve the proposer and the readers. The model is
// PostgreSQL's: max_connections (FATAL 53300), authentication_timeout, and
// MAX_STARTUP_PACKET_LENGTH (enforced by src/pq/startup.ts).
import type { Socket } from 'node:net';
import { errorResponse } from '../pq/backend.js';
import { PgError, SqlState } from '../pq/errors.js';

export interface ConnectionLimits {
  /** --max-connections: open connections (start-up included); one more is refused with 53300. */
  maxConnections: number;
  /** --startup-timeout in ms: the whole start-up phase (packet, authentication) must end within it. */
  startupTimeoutMs: number;
  /** Longest simple query accepted, in bytes; longer ones get ERROR 54000 and the session goes on. */
  maxQueryLength: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 100,
  startupTimeoutMs: 10_000,
  // Every safekeeper command is a line; 64 KiB leaves room for any of them.
  maxQueryLength: 64 * 1024,
};

/**
 * Connections beyond --max-connections are answered as PostgreSQL answers
 * them: after their start-up packet (so the SSL negotiation comes first and
 * libpq shows the message), with FATAL 53300. Up to this many of them at a
 * time; further ones are refused at once, before anything is read, so an
 * idle flood holds no more than this many sockets until the start-up timeout.
 */
export const OVER_LIMIT_BACKLOG = 16;

export type Admission = 'admit' | 'refuse-after-startup' | 'refuse-now';

/** What to do with a new connection while `open` connections are open. */
export function admission(open: number, limits: ConnectionLimits): Admission {
  if (open < limits.maxConnections) return 'admit';
  return open < limits.maxConnections + OVER_LIMIT_BACKLOG ? 'refuse-after-startup' : 'refuse-now';
}

/** How long a refused client gets to read the error before the socket is destroyed. */
const REFUSAL_LINGER_MS = 1000;

/** PostgreSQL's answer when max_connections is reached. */
export function tooManyConnections(): PgError {
  return new PgError({ severity: 'FATAL', code: SqlState.TOO_MANY_CONNECTIONS, message: 'sorry, too many clients already' });
}

/** PostgreSQL's answer to a query over the limit (54000, program_limit_exceeded). */
export function queryTooLong(length: number, limit: number): PgError {
  return new PgError({ code: SqlState.PROGRAM_LIMIT_EXCEEDED, message: `query too long: ${length} bytes, the limit is ${limit}` });
}

/**
 * Refuse a connection before start-up: the ErrorResponse goes out at once
 * (libpq reports an 'E' in answer to a StartupMessage with its text; in
 * answer to an SSLRequest only as "error response during SSL exchange"),
 * then our side is closed. What the client sends meanwhile is read and
 * dropped, so the close is a FIN after the error, not a reset that could
 * discard it; the socket is destroyed after a short linger in any case.
 */
export function refuseConnection(socket: Socket, err: PgError): void {
  socket.on('error', () => {});
  socket.resume();
  socket.end(errorResponse({ severity: err.severity, code: err.code, message: err.message }));
  const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
}
