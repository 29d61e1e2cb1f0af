// Typed decode/encode failures of the WAL push protocol and the control file.
// The daemon turns them into an ErrorResponse; the message says which
// message, which field, what was expected and what arrived.

export type ProtocolErrorCode =
  | 'wrong-length' // a fixed-size message of another size
  | 'too-short' // fewer bytes than the fixed part needs
  | 'bad-magic'
  | 'unknown-version'
  | 'bad-checksum'
  | 'end-before-begin'
  | 'wal-too-large'
  | 'wal-length-mismatch'
  | 'bad-field'; // an encoder was handed a value that does not fit its field

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';

  constructor(
    readonly code: ProtocolErrorCode,
    /** The message (or file) being decoded, e.g. "ServerInfo". */
    readonly what: string,
    /** The field at fault, e.g. "length" or "magic". */
    readonly field: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${what}: invalid ${field}: expected ${expected}, got ${got}`);
  }
}
