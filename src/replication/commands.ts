// Replication commands as a PostgreSQL 15 walsender accepts them, parsed
// from the text of a simple Query into a typed command, or a PgError
// carrying PostgreSQL's SQLSTATE and message.
//
// The rules follow PostgreSQL's replication scanner and grammar:
// * keywords are upper case only; a query whose first token is not a command
//   keyword is SQL, which a physical walsender refuses (0A000);
// * identifiers are bare (ASCII letters folded to lower case) or "double
//   quoted" (verbatim; no escape for an embedded quote), truncated to 63 bytes;
// * 'single quoted' strings with '' for a quote; unsigned decimal integers;
//   LSNs as hex/hex;
// * one optional trailing `;`; anything else left over is a syntax error.
//
// One extension, from the original safekeeper design: START_REPLICATION may
// carry a second LSN after the start position, the stop position.
import type { Lsn } from '../lsn.js';
import { PgError, SqlState } from '../pq/errors.js';

const syntaxError = (message = 'syntax error'): PgError => new PgError({ code: SqlState.SYNTAX_ERROR, message });

const KEYWORDS = [
  'BASE_BACKUP',
  'IDENTIFY_SYSTEM',
  'READ_REPLICATION_SLOT',
  'SHOW',
  'TIMELINE',
  'START_REPLICATION',
  'CREATE_REPLICATION_SLOT',
  'DROP_REPLICATION_SLOT',
  'TIMELINE_HISTORY',
  'PHYSICAL',
  'RESERVE_WAL',
  'LOGICAL',
  'SLOT',
  'TEMPORARY',
  'TWO_PHASE',
  'EXPORT_SNAPSHOT',
  'NOEXPORT_SNAPSHOT',
  'USE_SNAPSHOT',
  'WAIT',
] as const;
type Keyword = (typeof KEYWORDS)[number];
const KEYWORD_SET: ReadonlySet<string> = new Set(KEYWORDS);

/** Keywords that start a replication command; any other first token means SQL. */
const COMMAND_KEYWORDS: ReadonlySet<string> = new Set([
  'IDENTIFY_SYSTEM',
  'BASE_BACKUP',
  'START_REPLICATION',
  'CREATE_REPLICATION_SLOT',
  'DROP_REPLICATION_SLOT',
  'READ_REPLICATION_SLOT',
  'TIMELINE_HISTORY',
  'SHOW',
]);

/** NAMEDATALEN - 1 */
const MAX_IDENTIFIER_BYTES = 63;

type Token =
  | { t: 'kw'; v: Keyword }
  | { t: 'ident'; v: string }
  | { t: 'sconst'; v: string }
  | { t: 'uconst'; v: number }
  | { t: 'recptr'; v: Lsn }
  | { t: 'char'; v: string }
  | { t: 'eof' };

export interface GenericOption {
  name: string;
  /** IDENT or SCONST → string, UCONST → number, none → null. */
  value: string | number | null;
}

export type ReplicationCommand =
  | { type: 'IDENTIFY_SYSTEM' }
  | { type: 'SHOW'; name: string }
  | { type: 'READ_REPLICATION_SLOT'; slotName: string }
  | { type: 'TIMELINE_HISTORY'; timeline: number }
  | {
      type: 'START_REPLICATION';
      kind: 'physical';
      slotName: string | null;
      startLsn: Lsn;
      /** Walkeeper extension: end the stream here (null = follow the WAL). */
      stopLsn: Lsn | null;
      /** null = the server's current timeline. */
      timeline: number | null;
    }
  | { type: 'START_REPLICATION'; kind: 'logical'; slotName: string; startLsn: Lsn; options: GenericOption[] }
  | {
      type: 'CREATE_REPLICATION_SLOT';
      slotName: string;
      temporary: boolean;
      kind: 'physical' | 'logical';
      plugin: string | null;
      options: GenericOption[];
    }
  | { type: 'DROP_REPLICATION_SLOT'; slotName: string; wait: boolean }
  | { type: 'BASE_BACKUP'; options: GenericOption[] };

export const SQL_NOT_SUPPORTED = 'cannot execute SQL commands in WAL sender for physical replication';

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isHex = (c: string): boolean => isDigit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
const isIdentStart = (c: string): boolean => (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c === '_' || c.charCodeAt(0) >= 0x80;
const isIdentCont = (c: string): boolean => isIdentStart(c) || isDigit(c) || c === '$';

/** Cut to at most 63 UTF-8 bytes without splitting a character. */
function truncateIdentifier(s: string): string {
  if (Buffer.byteLength(s, 'utf8') <= MAX_IDENTIFIER_BYTES) return s;
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > MAX_IDENTIFIER_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** Lower-case ASCII letters only, as PostgreSQL does for multi-byte encodings. */
const downcase = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

class Lexer {
  private pos = 0;

  constructor(private readonly src: string) {}

  next(): Token {
    const s = this.src;
    while (this.pos < s.length && isSpace(s[this.pos])) this.pos++;
    if (this.pos >= s.length) return { t: 'eof' };
    const start = this.pos;
    const c = s[start];

    if (c === "'") return this.quoted("'", true);
    if (c === '"') return this.quoted('"', false);

    // Longest match between hex/hex (an LSN) and a number or identifier.
    let hexEnd = start;
    while (hexEnd < s.length && isHex(s[hexEnd])) hexEnd++;
    let lsnEnd = -1;
    if (hexEnd > start && s[hexEnd] === '/') {
      let e = hexEnd + 1;
      while (e < s.length && isHex(s[e])) e++;
      if (e > hexEnd + 1) lsnEnd = e;
    }
    let wordEnd = start;
    if (isDigit(c)) {
      while (wordEnd < s.length && isDigit(s[wordEnd])) wordEnd++;
    } else if (isIdentStart(c)) {
      wordEnd++;
      while (wordEnd < s.length && isIdentCont(s[wordEnd])) wordEnd++;
    }
    if (lsnEnd > wordEnd) {
      this.pos = lsnEnd;
      return { t: 'recptr', v: parseRecPtr(s.slice(start, lsnEnd)) };
    }
    if (wordEnd > start) {
      this.pos = wordEnd;
      const word = s.slice(start, wordEnd);
      if (isDigit(c)) {
        const n = Number(word);
        if (!Number.isSafeInteger(n) || n > 0xffffffff) throw syntaxError();
        return { t: 'uconst', v: n };
      }
      if (KEYWORD_SET.has(word)) return { t: 'kw', v: word as Keyword };
      return { t: 'ident', v: truncateIdentifier(downcase(word)) };
    }
    // Anything else is a token of its own.
    const cp = s.codePointAt(start)!;
    const ch = String.fromCodePoint(cp);
    this.pos += ch.length;
    return { t: 'char', v: ch };
  }

  private quoted(q: string, doubling: boolean): Token {
    const s = this.src;
    let i = this.pos + 1;
    let out = '';
    for (;;) {
      const end = s.indexOf(q, i);
      if (end < 0) throw syntaxError('unterminated quoted string');
      out += s.slice(i, end);
      if (doubling && s[end + 1] === q) {
        out += q;
        i = end + 2;
        continue;
      }
      this.pos = end + 1;
      break;
    }
    return q === "'" ? { t: 'sconst', v: out } : { t: 'ident', v: truncateIdentifier(out) };
  }
}

function parseRecPtr(text: string): Lsn {
  const [hi, lo] = text.split('/');
  // PostgreSQL reads each half with %X into 32 bits; more than 8 digits cannot be a position.
  if (hi.length > 8 || lo.length > 8) throw syntaxError('invalid streaming start location');
  return (BigInt('0x' + hi) << 32n) | BigInt('0x' + lo);
}

/**
 * The first token decides: a command keyword means a replication command,
 * anything else (including lower-case keywords and an empty query) is SQL.
 */
export function isReplicationCommand(sql: string): boolean {
  try {
    const tok = new Lexer(sql).next();
    return tok.t === 'kw' && COMMAND_KEYWORDS.has(tok.v);
  } catch {
    return false;
  }
}

class Parser {
  private la: Token;

  constructor(private readonly lex: Lexer) {
    this.la = lex.next();
  }

  private peek(): Token {
    return this.la;
  }

  private take(): Token {
    const t = this.la;
    this.la = t.t === 'eof' ? t : this.lex.next();
    return t;
  }

  private isKw(k: Keyword): boolean {
    return this.la.t === 'kw' && this.la.v === k;
  }

  private isChar(c: string): boolean {
    return this.la.t === 'char' && this.la.v === c;
  }

  private acceptKw(k: Keyword): boolean {
    if (!this.isKw(k)) return false;
    this.take();
    return true;
  }

  private expectChar(c: string): void {
    if (!this.isChar(c)) throw syntaxError();
    this.take();
  }

  private ident(): string {
    const t = this.take();
    if (t.t !== 'ident') throw syntaxError();
    return t.v;
  }

  private recptr(): Lsn {
    const t = this.take();
    if (t.t !== 'recptr') throw syntaxError();
    return t.v;
  }

  private timelineNumber(): number {
    const t = this.take();
    if (t.t !== 'uconst') throw syntaxError();
    if (t.v <= 0) throw syntaxError(`invalid timeline ${t.v}`);
    return t.v;
  }

  /** var_name: IDENT ('.' IDENT)* */
  private varName(): string {
    let name = this.ident();
    while (this.isChar('.')) {
      this.take();
      name += '.' + this.ident();
    }
    return name;
  }

  /** generic_option_list: option (',' option)*; option: ident_or_keyword [IDENT | SCONST | UCONST] */
  private genericOptions(): GenericOption[] {
    const out: GenericOption[] = [];
    for (;;) {
      const t = this.take();
      let name: string;
      if (t.t === 'ident') name = t.v;
      else if (t.t === 'kw') name = t.v.toLowerCase();
      else throw syntaxError();
      const v = this.peek();
      let value: string | number | null = null;
      if (v.t === 'ident' || v.t === 'sconst' || v.t === 'uconst') {
        this.take();
        value = v.v;
      }
      out.push({ name, value });
      if (!this.isChar(',')) return out;
      this.take();
    }
  }

  command(): ReplicationCommand {
    const t = this.take();
    if (t.t !== 'kw') throw syntaxError();
    let cmd: ReplicationCommand;
    switch (t.v) {
      case 'IDENTIFY_SYSTEM':
        cmd = { type: 'IDENTIFY_SYSTEM' };
        break;
      case 'SHOW':
        cmd = { type: 'SHOW', name: this.varName() };
        break;
      case 'READ_REPLICATION_SLOT':
        cmd = { type: 'READ_REPLICATION_SLOT', slotName: this.varName() };
        break;
      case 'TIMELINE_HISTORY':
        cmd = { type: 'TIMELINE_HISTORY', timeline: this.timelineNumber() };
        break;
      case 'BASE_BACKUP': {
        let options: GenericOption[] = [];
        if (this.isChar('(')) {
          this.take();
          options = this.genericOptions();
          this.expectChar(')');
        }
        cmd = { type: 'BASE_BACKUP', options };
        break;
      }
      case 'DROP_REPLICATION_SLOT': {
        const slotName = this.ident();
        cmd = { type: 'DROP_REPLICATION_SLOT', slotName, wait: this.acceptKw('WAIT') };
        break;
      }
      case 'CREATE_REPLICATION_SLOT':
        cmd = this.createSlot();
        break;
      case 'START_REPLICATION':
        cmd = this.startReplication();
        break;
      default:
        throw syntaxError();
    }
    if (this.isChar(';')) this.take();
    if (this.peek().t !== 'eof') throw syntaxError();
    return cmd;
  }

  private createSlot(): ReplicationCommand {
    const slotName = this.ident();
    const temporary = this.acceptKw('TEMPORARY');
    let kind: 'physical' | 'logical';
    let plugin: string | null = null;
    if (this.acceptKw('PHYSICAL')) kind = 'physical';
    else if (this.acceptKw('LOGICAL')) {
      kind = 'logical';
      plugin = this.ident();
    } else throw syntaxError();
    let options: GenericOption[] = [];
    if (this.isChar('(')) {
      this.take();
      options = this.genericOptions();
      this.expectChar(')');
    } else {
      // The pre-15 option words.
      for (;;) {
        if (this.acceptKw('EXPORT_SNAPSHOT')) options.push({ name: 'snapshot', value: 'export' });
        else if (this.acceptKw('NOEXPORT_SNAPSHOT')) options.push({ name: 'snapshot', value: 'nothing' });
        else if (this.acceptKw('USE_SNAPSHOT')) options.push({ name: 'snapshot', value: 'use' });
        else if (this.acceptKw('RESERVE_WAL')) options.push({ name: 'reserve_wal', value: 'true' });
        else if (this.acceptKw('TWO_PHASE')) options.push({ name: 'two_phase', value: 'true' });
        else break;
      }
    }
    return { type: 'CREATE_REPLICATION_SLOT', slotName, temporary, kind, plugin, options };
  }

  private startReplication(): ReplicationCommand {
    let slotName: string | null = null;
    if (this.acceptKw('SLOT')) {
      slotName = this.ident();
      if (this.acceptKw('LOGICAL')) {
        const startLsn = this.recptr();
        let options: GenericOption[] = [];
        if (this.isChar('(')) {
          this.take();
          options = this.pluginOptions();
          this.expectChar(')');
        }
        return { type: 'START_REPLICATION', kind: 'logical', slotName, startLsn, options };
      }
    }
    this.acceptKw('PHYSICAL');
    const startLsn = this.recptr();
    let stopLsn: Lsn | null = null;
    if (this.peek().t === 'recptr') stopLsn = this.recptr();
    let timeline: number | null = null;
    if (this.acceptKw('TIMELINE')) timeline = this.timelineNumber();
    return { type: 'START_REPLICATION', kind: 'physical', slotName, startLsn, stopLsn, timeline };
  }

  /** plugin_opt_list: IDENT [SCONST] (',' IDENT [SCONST])* */
  private pluginOptions(): GenericOption[] {
    const out: GenericOption[] = [];
    for (;;) {
      const name = this.ident();
      const v = this.peek();
      let value: string | null = null;
      if (v.t === 'sconst') {
        this.take();
        value = v.v;
      }
      out.push({ name, value });
      if (!this.isChar(',')) return out;
      this.take();
    }
  }
}

/**
 * Parse one replication command. Throws PgError: 0A000 for SQL (any
 * query not starting with a replication command keyword), 42601 for syntax
 * errors, with PostgreSQL's messages.
 */
export function parseReplicationCommand(sql: string): ReplicationCommand {
  const lex = new Lexer(sql);
  // PostgreSQL lexes the first token before deciding, so a scanner error there wins.
  const first = lex.next();
  if (first.t !== 'kw' || !COMMAND_KEYWORDS.has(first.v)) {
    throw new PgError({ code: SqlState.FEATURE_NOT_SUPPORTED, message: SQL_NOT_SUPPORTED });
  }
  // Re-lex from the start: the parser keeps one token of lookahead.
  return new Parser(new Lexer(sql)).command();
}

/** Parse, returning the error instead of throwing it. */
export function tryParseReplicationCommand(sql: string): { ok: true; command: ReplicationCommand } | { ok: false; error: PgError } {
  try {
    return { ok: true, command: parseReplicationCommand(sql) };
  } catch (err) {
    if (err instanceof PgError) return { ok: false, error: err };
    throw err;
  }
}
