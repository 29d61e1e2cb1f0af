// The backend messages a walsender sends: results of replication commands
// (RowDescription, DataRow, CommandComplete), errors, ReadyForQuery and the
// COPY BOTH framing. Layouts are PostgreSQL protocol 3.0 (big-endian).
import { message, type Writer } from '../pq/buffer.js';

export const INT8_OID = 20;
export const INT4_OID = 23;
export const TEXT_OID = 25;

const tag = (c: string): number => c.charCodeAt(0);

export interface Column {
  name: string;
  typeOid: number;
  /** pg_type.typlen: -1 for varlena (text), 4 for int4, 8 for int8. */
  typeLen: number;
  /** -1 except where PostgreSQL sends 0 (TIMELINE_HISTORY's columns). */
  typmod: number;
}

export const textColumn = (name: string, typmod = -1): Column => ({ name, typeOid: TEXT_OID, typeLen: -1, typmod });
export const int4Column = (name: string): Column => ({ name, typeOid: INT4_OID, typeLen: 4, typmod: -1 });
export const int8Column = (name: string): Column => ({ name, typeOid: INT8_OID, typeLen: 8, typmod: -1 });

/** 'T': field count, then per field name, table OID 0, column 0, type OID, type length, typmod, format 0 (text). */
export function rowDescription(columns: readonly Column[]): Buffer {
  return message(tag('T'), (w) => {
    w.i16(columns.length);
    for (const c of columns) w.cstring(c.name).i32(0).i16(0).i32(c.typeOid).i16(c.typeLen).i32(c.typmod).i16(0);
  });
}

/** 'D': column count, then per column an int32 length (-1 = NULL) and the text bytes. */
export function dataRow(values: ReadonlyArray<string | Uint8Array | null>): Buffer {
  return message(tag('D'), (w) => {
    w.i16(values.length);
    for (const v of values) {
      if (v === null) {
        w.i32(-1);
        continue;
      }
      const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      w.i32(bytes.length).bytes(bytes);
    }
  });
}

/** 'C' with a command tag. */
export function commandComplete(commandTag: string): Buffer {
  return message(tag('C'), (w) => void w.cstring(commandTag));
}

/** 'Z' with the transaction status ('I' idle: a walsender never runs a transaction). */
export function readyForQuery(status: 'I' | 'T' | 'E' = 'I'): Buffer {
  return message(tag('Z'), (w) => void w.u8(tag(status)));
}

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE';

export interface ErrorFields {
  severity?: Severity;
  /** SQLSTATE. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function fields(w: Writer, f: ErrorFields): void {
  const severity = f.severity ?? 'ERROR';
  w.u8(tag('S')).cstring(severity);
  w.u8(tag('V')).cstring(severity);
  w.u8(tag('C')).cstring(f.code);
  w.u8(tag('M')).cstring(f.message);
  if (f.detail !== undefined) w.u8(tag('D')).cstring(f.detail);
  if (f.hint !== undefined) w.u8(tag('H')).cstring(f.hint);
  w.u8(0);
}

/** 'E': S, V, C, M (and D, H when given), then a terminating 0. */
export function errorResponse(f: ErrorFields): Buffer {
  return message(tag('E'), (w) => fields(w, f));
}

/** 'W': overall format 0 (text), 0 columns: what START_REPLICATION answers before streaming. */
export function copyBothResponse(): Buffer {
  return message(tag('W'), (w) => void w.u8(0).i16(0));
}

/** 'c' */
export function copyDone(): Buffer {
  return message(tag('c'), () => {});
}

/** 'd' around a payload (copies it; the sender builds XLogData in place instead). */
export function copyData(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = tag('d');
  out.writeInt32BE(4 + payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** A whole result set: T, D per row, C. */
export function resultSet(columns: readonly Column[], rows: ReadonlyArray<ReadonlyArray<string | Uint8Array | null>>, commandTag: string): Buffer {
  return Buffer.concat([rowDescription(columns), ...rows.map((r) => dataRow(r)), commandComplete(commandTag)]);
}
