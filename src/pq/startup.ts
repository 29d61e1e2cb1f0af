// The start-up phase of a PostgreSQL connection: the untagged packets a
// client sends first (SSLRequest, GSSENCRequest, CancelRequest,
// StartupMessage) and the settings inside the `options` parameter.
import { Reader, ReadError } from './buffer.js';
import { PgError, SqlState } from './errors.js';

export const SSL_REQUEST_CODE = 80877103; // 1234 << 16 | 5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234 << 16 | 5680
export const CANCEL_REQUEST_CODE = 80877102; // 1234 << 16 | 5678
export const PROTOCOL_3_0 = 3 << 16;
/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
export const MAX_STARTUP_PACKET = 10000;

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: number }
  | {
      kind: 'startup';
      /** Protocol version: major << 16 | minor. */
      protocol: number;
      /** Parameters in wire order; `_pq_.` protocol options are kept here too. */
      params: Map<string, string>;
    };

/**
 * Decode one start-up packet body (the bytes after its int32 length word).
 * Throws a FATAL PgError (08P01 or 0A000) for anything malformed.
 */
export function decodeStartupPacket(body: Uint8Array): StartupPacket {
  if (body.length < 4) throw PgError.protocol('invalid length of startup packet');
  const r = new Reader(body);
  const code = r.u32();
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    if (body.length !== 4) throw PgError.protocol('invalid length of startup packet');
    return { kind: code === SSL_REQUEST_CODE ? 'ssl' : 'gssenc' };
  }
  if (code === CANCEL_REQUEST_CODE) {
    if (body.length !== 12) throw PgError.protocol('invalid length of cancel request packet');
    return { kind: 'cancel', pid: r.i32(), secret: r.i32() };
  }
  const major = code >>> 16;
  if (major !== 3) {
    throw new PgError({
      severity: 'FATAL',
      code: SqlState.FEATURE_NOT_SUPPORTED,
      message: `unsupported frontend protocol ${major}.${code & 0xffff}: server supports 3.0 to 3.0`,
    });
  }
  const params = new Map<string, string>();
  try {
    for (;;) {
      if (r.remaining === 0) throw PgError.protocol('invalid startup packet layout: expected terminator as last byte');
      const name = r.cstring('parameter name');
      if (name === '') break;
      const value = r.cstring(`value of parameter "${name}"`);
      params.set(name, value);
    }
  } catch (err) {
    if (err instanceof ReadError) throw PgError.protocol('invalid startup packet layout: expected terminator as last byte');
    throw err;
  }
  if (r.remaining !== 0) throw PgError.protocol('invalid startup packet layout: expected terminator as last byte');
  return { kind: 'startup', protocol: code, params };
}

/**
 * Split an `options` value into words as PostgreSQL does: words are
 * separated by whitespace, and a backslash makes the next character literal
 * (so `\ ` is a space inside a word and `\\` a backslash).
 */
export function splitOptions(options: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i];
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (ch === '\\' && i + 1 < options.length) {
      cur += options[++i];
    } else {
      cur += ch;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

function longOption(arg: string, whole: string): [string, string] {
  const eq = arg.indexOf('=');
  if (eq <= 0) {
    throw new PgError({
      severity: 'FATAL',
      code: SqlState.SYNTAX_ERROR,
      message: `invalid command-line argument for server process: ${whole}`,
      hint: 'Use -c name=value.',
    });
  }
  // PostgreSQL turns dashes in a long option's name into underscores.
  return [arg.slice(0, eq).replace(/-/g, '_'), arg.slice(eq + 1)];
}

/**
 * The `name=value` settings inside an `options` string. PostgreSQL's forms:
 * `-c name=value`, `-cname=value` and `--name=value`; and, as the 2021
 * walkeeper read them, bare `name=value` words, which the 2021 compute sends
 * after one `-c` (`-c ztimelineid=<hex> ztenantid=<hex>`). Anything else is
 * refused.
 */
export function parseStartupOptions(options: string): Map<string, string> {
  const out = new Map<string, string>();
  const words = splitOptions(options);
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    let kv: [string, string];
    if (w === '-c') {
      if (i + 1 >= words.length) {
        throw new PgError({ severity: 'FATAL', code: SqlState.SYNTAX_ERROR, message: 'invalid command-line argument for server process: -c needs name=value' });
      }
      kv = longOption(words[++i], `-c ${words[i]}`);
    } else if (w.startsWith('-c')) {
      kv = longOption(w.slice(2), w);
    } else if (w.startsWith('--')) {
      kv = longOption(w.slice(2), w);
    } else if (isBarePair(w)) {
      kv = longOption(w, w);
    } else {
      throw new PgError({
        severity: 'FATAL',
        code: SqlState.SYNTAX_ERROR,
        message: `invalid command-line argument for server process: ${w}`,
        hint: 'Only -c name=value and --name=value are accepted in options.',
      });
    }
    out.set(kv[0], kv[1]);
  }
  return out;
}

/** A 2021-style setting: `name=value` with a name, not an option flag. */
function isBarePair(word: string): boolean {
  return !word.startsWith('-') && word.indexOf('=') > 0;
}

/**
 * Accumulates the bytes of the start-up phase and cuts whole packets (int32
 * length, counting itself, then the body). Not the hot path: used only until
 * the StartupMessage has arrived.
 */
export class StartupReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): void {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
  }

  /** The next packet body, or null until one is complete. Throws PgError on a bad length. */
  next(): Buffer | null {
    if (this.buf.length < 4) return null;
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_PACKET) throw PgError.protocol('invalid length of startup packet');
    if (this.buf.length < len) return null;
    const body = this.buf.subarray(4, len);
    this.buf = this.buf.subarray(len);
    return body;
  }

  /** Bytes received after the last packet returned (the start of the tagged stream). */
  takeRest(): Buffer {
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}
