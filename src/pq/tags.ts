// The type bytes of PostgreSQL protocol 3.0 messages, both directions, and
// how a tag byte is named in error messages. A leaf module: the framer in
// hot/ names tags too.

/** Message type bytes, server → client. */
export const BackendTag = {
  Authentication: 0x52, // 'R'
  ParameterStatus: 0x53, // 'S'
  BackendKeyData: 0x4b, // 'K'
  ReadyForQuery: 0x5a, // 'Z'
  ErrorResponse: 0x45, // 'E'
  NoticeResponse: 0x4e, // 'N'
  CommandComplete: 0x43, // 'C'
  EmptyQueryResponse: 0x49, // 'I'
  RowDescription: 0x54, // 'T'
  DataRow: 0x44, // 'D'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  NegotiateProtocolVersion: 0x76, // 'v'
} as const;

/** Message type bytes, client → server (after start-up). */
export const FrontendTag = {
  Query: 0x51, // 'Q'
  Terminate: 0x58, // 'X'
  PasswordMessage: 0x70, // 'p'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Sync: 0x53, // 'S'
  Flush: 0x48, // 'H'
  Parse: 0x50, // 'P'
  Bind: 0x42, // 'B'
  Execute: 0x45, // 'E'
  Describe: 0x44, // 'D'
  Close: 0x43, // 'C'
  FunctionCall: 0x46, // 'F'
} as const;

/**
 * How a tag is spelled inside an error message. Each spelling is already on
 * the wire somewhere, so each is kept:
 * * 'quoted': `'Q'`, or `0x05` when not printable (the listener's refusals);
 * * 'quoted-with-code': `'Q' (0x51)`, or `0x05` (framing errors);
 * * 'bare': `Q`, or `\x05`, for use inside double quotes as PostgreSQL's
 *   walsender writes `unexpected message type "%c"`.
 */
export type TagSpelling = 'quoted' | 'quoted-with-code' | 'bare';

/** A message type byte as named in error messages (see TagSpelling). */
export function describeTag(tag: number, spelling: TagSpelling): string {
  const code = tag.toString(16).padStart(2, '0');
  if (tag < 0x20 || tag >= 0x7f) return spelling === 'bare' ? `\\x${code}` : `0x${code}`;
  const ch = String.fromCharCode(tag);
  switch (spelling) {
    case 'bare':
      return ch;
    case 'quoted':
      return `'${ch}'`;
    case 'quoted-with-code':
      return `'${ch}' (0x${code})`;
  }
}
