// Why the acceptor refused a message. The host answers with an
// ErrorResponse carrying the message and ends the session.

export type AcceptorErrorCode =
  | 'protocol-version' // ServerInfo.protocol_version is not 1
  | 'system-id-mismatch' // another database's WAL
  | 'wal-seg-size-mismatch'
  | 'invalid-wal-seg-size' // not a power of two in 1 MiB .. 1 GiB
  | 'tenant-mismatch'
  | 'timeline-mismatch'
  | 'pg-timeline-mismatch' // the proposer's primary is not on this timeline's PostgreSQL timeline or a descendant of it
  | 'wrong-sender' // sender_id is not the current vote
  | 'out-of-order' // a message the session's phase does not allow (append before vote, ...)
  | 'wal-gap' // WAL that does not continue the session's stream or the local WAL
  | 'bad-request'; // inconsistent request fields (byte count, end before begin, size)

export class AcceptorError extends Error {
  override readonly name = 'AcceptorError';

  constructor(
    readonly code: AcceptorErrorCode,
    message: string,
  ) {
    super(message);
  }
}
