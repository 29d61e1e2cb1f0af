// Builders for the messages a PostgreSQL server sends (protocol 3.0). Each
// returns the complete wire bytes: tag, int32 length (counting itself), body.
import { message } from './buffer.js';
import type { PgErrorFields } from './errors.js';
import { BackendTag } from './tags.js';

/** The single byte that answers an SSLRequest or GSSENCRequest: "not supported". */
export const NO_ENCRYPTION = Buffer.from('N', 'latin1');

export const AuthCode = { Ok: 0, CleartextPassword: 3 } as const;

export function authenticationOk(): Buffer {
  return message(BackendTag.Authentication, (w) => w.i32(AuthCode.Ok));
}

export function authenticationCleartextPassword(): Buffer {
  return message(BackendTag.Authentication, (w) => w.i32(AuthCode.CleartextPassword));
}

export function parameterStatus(name: string, value: string): Buffer {
  return message(BackendTag.ParameterStatus, (w) => w.cstring(name).cstring(value));
}

export function backendKeyData(pid: number, secret: number): Buffer {
  return message(BackendTag.BackendKeyData, (w) => w.i32(pid).i32(secret));
}

export type TransactionStatus = 'I' | 'T' | 'E';

export function readyForQuery(status: TransactionStatus = 'I'): Buffer {
  return message(BackendTag.ReadyForQuery, (w) => w.u8(status.charCodeAt(0)));
}

function noticeFields(tag: number, f: PgErrorFields): Buffer {
  const severity = f.severity ?? 'ERROR';
  return message(tag, (w) => {
    w.u8(0x53).cstring(severity); // S: localized severity
    w.u8(0x56).cstring(severity); // V: severity, never localized
    w.u8(0x43).cstring(f.code); // C: SQLSTATE
    w.u8(0x4d).cstring(f.message); // M
    if (f.detail !== undefined) w.u8(0x44).cstring(f.detail); // D
    if (f.hint !== undefined) w.u8(0x48).cstring(f.hint); // H
    w.u8(0);
  });
}

export function errorResponse(f: PgErrorFields): Buffer {
  return noticeFields(BackendTag.ErrorResponse, f);
}

export function noticeResponse(f: PgErrorFields): Buffer {
  return noticeFields(BackendTag.NoticeResponse, { ...f, severity: f.severity ?? 'NOTICE' });
}

export function commandComplete(tag: string): Buffer {
  return message(BackendTag.CommandComplete, (w) => w.cstring(tag));
}

export function emptyQueryResponse(): Buffer {
  return message(BackendTag.EmptyQueryResponse, () => {});
}

/** Type OIDs used in RowDescription. */
export const TypeOid = { int8: 20, int4: 23, text: 25 } as const;

export interface FieldDescription {
  name: string;
  typeOid: number;
  /** pg_type.typlen: -1 for varlena (text), 4 for int4, 8 for int8. */
  typeLen: number;
  typeMod?: number;
}

/** A text column; `typeMod` is -1 except where PostgreSQL sends 0 (TIMELINE_HISTORY's columns). */
export function textField(name: string, typeMod = -1): FieldDescription {
  return { name, typeOid: TypeOid.text, typeLen: -1, typeMod };
}

export function int4Field(name: string): FieldDescription {
  return { name, typeOid: TypeOid.int4, typeLen: 4 };
}

export function int8Field(name: string): FieldDescription {
  return { name, typeOid: TypeOid.int8, typeLen: 8 };
}

export function rowDescription(fields: FieldDescription[]): Buffer {
  return message(BackendTag.RowDescription, (w) => {
    w.i16(fields.length);
    for (const f of fields) {
      w.cstring(f.name).i32(0).i16(0).i32(f.typeOid).i16(f.typeLen).i32(f.typeMod ?? -1).i16(0);
    }
  });
}

/** One row, values in text form; null is SQL NULL. */
export function dataRow(values: (string | Uint8Array | null)[]): Buffer {
  return message(BackendTag.DataRow, (w) => {
    w.i16(values.length);
    for (const v of values) {
      if (v === null) {
        w.i32(-1);
      } else {
        const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
        w.i32(b.length).bytes(b);
      }
    }
  });
}

/** A whole result set: RowDescription, a DataRow per row, CommandComplete. */
export function resultSet(fields: FieldDescription[], rows: (string | Uint8Array | null)[][], tag: string): Buffer {
  return Buffer.concat([rowDescription(fields), ...rows.map((r) => dataRow(r)), commandComplete(tag)]);
}

/** CopyBothResponse: overall text format, no columns. */
export function copyBothResponse(): Buffer {
  return message(BackendTag.CopyBothResponse, (w) => w.u8(0).i16(0));
}

/** CopyData around `payload`; the payload is copied once into the message. */
export function copyData(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = BackendTag.CopyData;
  out.writeInt32BE(4 + payload.length, 1);
  out.set(payload, 5);
  return out;
}

export function copyDone(): Buffer {
  return message(BackendTag.CopyDone, () => {});
}

/** NegotiateProtocolVersion: the newest minor version supported and the options not recognised. */
export function negotiateProtocolVersion(newestMinor: number, unrecognized: string[]): Buffer {
  return message(BackendTag.NegotiateProtocolVersion, (w) => {
    w.i32(newestMinor).i32(unrecognized.length);
    for (const o of unrecognized) w.cstring(o);
  });
}
