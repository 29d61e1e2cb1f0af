// The client side of the PostgreSQL v3 protocol: builders of what a
// frontend sends, and decoders of the backend messages it receives (bodies
// as split by MessageFramer). Integers are big-endian.
import { ReadError, Reader, Writer, message } from './buffer.js';
import { BackendTag } from './tags.js';

export const PROTOCOL_3_0 = 0x0003_0000;
const SSL_REQUEST_CODE = 80877103;

export { BackendTag } from './tags.js';

/** A backend message body that does not parse. */
export class BackendMessageError extends Error {
  override readonly name = 'BackendMessageError';

  constructor(
    readonly messageType: string,
    reason: string,
  ) {
    super(`malformed ${messageType} from the server: ${reason}`);
  }
}

// ---- what a frontend sends ----

/** StartupMessage: no tag; length, protocol 3.0, name/value pairs, a final NUL. */
export function startupMessage(params: Readonly<Record<string, string>>): Buffer {
  const w = new Writer(false);
  w.i32(0).i32(PROTOCOL_3_0);
  for (const [name, value] of Object.entries(params)) w.cstring(name).cstring(value);
  w.u8(0);
  w.patchI32(0, w.length);
  return w.finish();
}

/** SSLRequest: the server answers with one byte, 'S' or 'N'. */
export function sslRequest(): Buffer {
  return new Writer(false).i32(8).i32(SSL_REQUEST_CODE).finish();
}

export function query(sql: string): Buffer {
  return message(0x51 /* Q */, (w) => w.cstring(sql));
}

export function copyData(payload: Uint8Array): Buffer {
  return message(BackendTag.CopyData, (w) => w.bytes(payload));
}

/** The 5 bytes that start a CopyData message whose payload (`payloadLength` bytes) is written after them. */
export function copyDataHeader(payloadLength: number): Buffer {
  const out = Buffer.allocUnsafe(5);
  out[0] = BackendTag.CopyData;
  out.writeInt32BE(4 + payloadLength, 1);
  return out;
}

export function copyDone(): Buffer {
  return message(BackendTag.CopyDone, () => {});
}

export function terminate(): Buffer {
  return message(0x58 /* X */, () => {});
}

/** PasswordMessage: a cleartext password, or "md5" + hex digest. */
export function passwordMessage(password: string): Buffer {
  return message(0x70 /* p */, (w) => w.cstring(password));
}

// ---- what a frontend receives ----

function parse<T>(what: string, body: Uint8Array, read: (r: Reader) => T, exact = true): T {
  const r = new Reader(body, false);
  let v: T;
  try {
    v = read(r);
  } catch (e) {
    if (e instanceof ReadError) throw new BackendMessageError(what, e.message);
    throw e;
  }
  if (exact && r.remaining !== 0) throw new BackendMessageError(what, `${r.remaining} unexpected bytes after the last field`);
  return v;
}

export type Authentication =
  | { kind: 'ok' }
  | { kind: 'cleartext-password' }
  | { kind: 'md5-password'; salt: Uint8Array }
  | { kind: 'sasl'; mechanisms: string[] }
  | { kind: 'sasl-continue' | 'sasl-final'; data: Uint8Array }
  | { kind: 'other'; code: number };

export function decodeAuthentication(body: Uint8Array): Authentication {
  return parse('Authentication', body, (r): Authentication => {
    const code = r.i32('authentication code');
    switch (code) {
      case 0:
        return { kind: 'ok' };
      case 3:
        return { kind: 'cleartext-password' };
      case 5:
        return { kind: 'md5-password', salt: Uint8Array.from(r.bytes(4, 'salt')) };
      case 10: {
        const mechanisms: string[] = [];
        for (let m = r.cstring('mechanism'); m !== ''; m = r.cstring('mechanism')) mechanisms.push(m);
        return { kind: 'sasl', mechanisms };
      }
      case 11:
        return { kind: 'sasl-continue', data: Uint8Array.from(r.rest()) };
      case 12:
        return { kind: 'sasl-final', data: Uint8Array.from(r.rest()) };
      default:
        r.rest();
        return { kind: 'other', code };
    }
  });
}

export function decodeParameterStatus(body: Uint8Array): { name: string; value: string } {
  return parse('ParameterStatus', body, (r) => ({ name: r.cstring('name'), value: r.cstring('value') }));
}

export function decodeBackendKeyData(body: Uint8Array): { pid: number; secret: number } {
  return parse('BackendKeyData', body, (r) => ({ pid: r.i32('pid'), secret: r.i32('secret key') }));
}

/** The transaction status: 'I' idle, 'T' in a transaction, 'E' in a failed one. */
export function decodeReadyForQuery(body: Uint8Array): string {
  return parse('ReadyForQuery', body, (r) => {
    const status = String.fromCharCode(r.u8('transaction status'));
    if (status !== 'I' && status !== 'T' && status !== 'E') throw new BackendMessageError('ReadyForQuery', `unknown transaction status '${status}'`);
    return status;
  });
}

/**
 * ErrorResponse / NoticeResponse: fields by their one-letter code (S, V, C,
 * M, D, H, P, F, L, R, ...), each a string.
 */
export function decodeErrorFields(body: Uint8Array, what = 'ErrorResponse'): Record<string, string> {
  return parse(what, body, (r) => {
    const fields: Record<string, string> = {};
    for (let code = r.u8('field code'); code !== 0; code = r.u8('field code')) {
      fields[String.fromCharCode(code)] = r.cstring('field value');
    }
    return fields;
  });
}

export interface FieldDescription {
  name: string;
  tableOid: number;
  column: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  format: number;
}

export function decodeRowDescription(body: Uint8Array): FieldDescription[] {
  return parse('RowDescription', body, (r) => {
    const n = r.i16('field count');
    const fields: FieldDescription[] = [];
    for (let i = 0; i < n; i++) {
      fields.push({
        name: r.cstring('field name'),
        tableOid: r.u32('table oid'),
        column: r.i16('column number'),
        typeOid: r.u32('type oid'),
        typeSize: r.i16('type size'),
        typeModifier: r.i32('type modifier'),
        format: r.i16('format code'),
      });
    }
    return fields;
  });
}

/** DataRow values as UTF-8 text (null for SQL NULL). */
export function decodeDataRow(body: Uint8Array): (string | null)[] {
  return parse('DataRow', body, (r) => {
    const n = r.i16('column count');
    const values: (string | null)[] = [];
    for (let i = 0; i < n; i++) {
      const len = r.i32('value length');
      if (len < -1) throw new BackendMessageError('DataRow', `value length ${len}`);
      values.push(len === -1 ? null : Buffer.from(r.bytes(len, 'value')).toString('utf8'));
    }
    return values;
  });
}

export function decodeCommandComplete(body: Uint8Array): string {
  return parse('CommandComplete', body, (r) => r.cstring('command tag'));
}

/** CopyBothResponse / CopyOutResponse / CopyInResponse: overall format and per-column formats. */
export function decodeCopyResponse(body: Uint8Array, what = 'CopyBothResponse'): { format: number; columnFormats: number[] } {
  return parse(what, body, (r) => {
    const format = r.u8('format');
    const n = r.i16('column count');
    const columnFormats: number[] = [];
    for (let i = 0; i < n; i++) columnFormats.push(r.i16('column format'));
    return { format, columnFormats };
  });
}
