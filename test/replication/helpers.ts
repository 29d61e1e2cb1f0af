// Test helpers for the replication side: byte fixtures written as hex with
// quoted text, an in-memory ReplicationConnection, and a splitter for the
// server's output.
import type { ClientMessage, ReplicationConnection } from '../../src/replication/connection.js';
import { segmentFileName, segmentNumber, segmentOffset, type Lsn } from '../../src/lsn.js';
import { LsnWatch } from '../../src/replication/positions.js';
import { ReaderRegistry, WalSegmentMissingError, type ReaderHandle, type ReaderInfo, type WaitTarget, type WalSource } from '../../src/replication/source.js';

/**
 * Bytes from a fixture string: hex digits (spaces ignored) and "quoted
 * text" with \0 \t \n escapes, e.g. `54 0000006f 0004 "systemid\0"`.
 */
export function fx(spec: string): Buffer {
  const parts: Buffer[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|([0-9a-fA-F]+)|(\s+)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(spec))) {
    pos = re.lastIndex;
    if (m[1] !== undefined) {
      const text = m[1].replace(/\\(.)/g, (_, c: string) => ({ '0': '\0', t: '\t', n: '\n', '\\': '\\', '"': '"' })[c] ?? c);
      parts.push(Buffer.from(text, 'latin1'));
    } else if (m[2] !== undefined) {
      if (m[2].length % 2) throw new Error(`odd hex run "${m[2]}" in fixture`);
      parts.push(Buffer.from(m[2], 'hex'));
    }
  }
  if (pos !== spec.length) throw new Error(`bad fixture at ${pos}: ${spec.slice(pos, pos + 20)}`);
  return Buffer.concat(parts);
}

export interface ServerMessage {
  tag: string;
  body: Buffer;
  /** The whole message, tag and length included. */
  raw: Buffer;
}

/** Split the server's output into messages (the 1-byte SSL answer is not expected here). */
export function splitMessages(buf: Buffer): ServerMessage[] {
  const out: ServerMessage[] = [];
  let p = 0;
  while (p < buf.length) {
    if (buf.length - p < 5) throw new Error(`truncated message at ${p}`);
    const len = buf.readInt32BE(p + 1);
    const end = p + 1 + len;
    if (end > buf.length) throw new Error(`truncated message at ${p}: length ${len}`);
    out.push({ tag: String.fromCharCode(buf[p]), body: buf.subarray(p + 5, end), raw: buf.subarray(p, end) });
    p = end;
  }
  return out;
}

/** Fields of an ErrorResponse body by code letter. */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 0;
  while (p < body.length && body[p] !== 0) {
    const code = String.fromCharCode(body[p]);
    const end = body.indexOf(0, p + 1);
    out[code] = body.subarray(p + 1, end).toString('utf8');
    p = end + 1;
  }
  return out;
}

/** Values of a DataRow body (null for NULL). */
export function dataRowValues(body: Buffer): (string | null)[] {
  const n = body.readInt16BE(0);
  const out: (string | null)[] = [];
  let p = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(p);
    p += 4;
    if (len < 0) out.push(null);
    else {
      out.push(body.subarray(p, p + len).toString('utf8'));
      p += len;
    }
  }
  return out;
}

export const cd = (payload: Uint8Array): ClientMessage => ({ tag: 0x64, body: Buffer.from(payload) });
export const copyDoneMsg: ClientMessage = { tag: 0x63, body: Buffer.alloc(0) };
export const terminateMsg: ClientMessage = { tag: 0x58, body: Buffer.alloc(0) };

/**
 * An in-memory connection. Output accumulates in `output`; the test feeds
 * client messages with push() and ends the input with end(). With a
 * high-water mark, send() returns false once that many bytes are "in the
 * socket", and drain() waits until the test calls consume().
 */
export class FakeConn implements ReplicationConnection {
  readonly chunks: Buffer[] = [];
  readonly startupParams: Record<string, string>;
  readonly remoteAddress = '127.0.0.1:54321';
  private inbox: ClientMessage[] = [];
  private ended = false;
  private waiter: (() => void) | null = null;
  private pendingBytes = 0;
  private drainWaiters: (() => void)[] = [];
  private sendListeners: (() => void)[] = [];
  sendCalls = 0;
  drainCalls = 0;

  constructor(
    params: Record<string, string> = {},
    private readonly highWater = Infinity,
  ) {
    this.startupParams = { application_name: 'test', ...params };
  }

  get output(): Buffer {
    return Buffer.concat(this.chunks);
  }

  messages(): ServerMessage[] {
    return splitMessages(this.output);
  }

  send(bytes: Uint8Array): boolean {
    this.sendCalls++;
    this.chunks.push(Buffer.from(bytes));
    this.pendingBytes += bytes.length;
    for (const l of this.sendListeners.splice(0)) l();
    return this.pendingBytes < this.highWater;
  }

  drain(): Promise<void> {
    this.drainCalls++;
    if (this.pendingBytes < this.highWater) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  /** The peer read everything sent so far. */
  consume(): void {
    this.pendingBytes = 0;
    for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Resolves at the next send() call. */
  nextSend(): Promise<void> {
    return new Promise((r) => this.sendListeners.push(r));
  }

  /** Wait until the output satisfies `pred` (checked at every send). */
  async until(pred: (msgs: ServerMessage[]) => boolean, timeoutMs = 5000): Promise<ServerMessage[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msgs = this.messages();
      if (pred(msgs)) return msgs;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; output: ${msgs.map((m) => m.tag).join(' ')}`);
      await Promise.race([this.nextSend(), new Promise((r) => setTimeout(r, left))]);
    }
  }

  push(msg: ClientMessage): void {
    this.inbox.push(msg);
    this.waiter?.();
  }

  end(): void {
    this.ended = true;
    this.waiter?.();
  }

  /** Messages not consumed by the handler. */
  get unread(): ClientMessage[] {
    return [...this.inbox];
  }

  nextMessage(signal?: AbortSignal): Promise<ClientMessage | null> {
    return new Promise((resolve, reject) => {
      const attempt = (): boolean => {
        if (this.inbox.length) {
          resolve(this.inbox.shift()!);
          return true;
        }
        if (this.ended) {
          resolve(null);
          return true;
        }
        return false;
      };
      if (signal?.aborted) return reject(signal.reason);
      if (attempt()) return;
      const onAbort = (): void => {
        this.waiter = null;
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiter = () => {
        if (attempt()) {
          this.waiter = null;
          signal?.removeEventListener('abort', onAbort);
        }
      };
    });
  }
}

// ---- an in-memory WalSource ----


/** The byte the in-memory source holds at `lsn`: a pattern that changes every byte and every page. */
export function walByte(lsn: Lsn): number {
  return Number((lsn * 131n + (lsn >> 13n) * 7n) & 0xffn);
}

export function walBytes(from: Lsn, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  // Same as walByte(), in plain numbers (mod 256 is all that matters).
  let lo = Number(from & 0xffn);
  let page = Number((from >> 13n) & 0xffn);
  let inPage = Number(from & 0x1fffn);
  for (let i = 0; i < n; i++) {
    b[i] = (lo * 131 + page * 7) & 0xff;
    lo = (lo + 1) & 0xff;
    if (++inPage === 8192) {
      inPage = 0;
      page = (page + 1) & 0xff;
    }
  }
  return b;
}

export interface MemSourceOptions {
  commit: Lsn;
  flush?: Lsn;
  walSegSize?: number;
  pgTimeline?: number;
  /** Segments below the one holding this position are "removed". */
  removedBelow?: Lsn;
  /** Timeline history files by timeline. */
  history?: Record<number, string>;
  systemId?: bigint;
  pgVersion?: number;
}

export class MemWalSource implements WalSource {
  readonly systemId: bigint;
  readonly pgTimeline: number;
  readonly walSegSize: number;
  readonly pgVersion: number;
  readonly commit: LsnWatch;
  readonly flush: LsnWatch;
  readonly readers = new ReaderRegistry();
  readonly reads: { lsn: Lsn; n: number }[] = [];
  removedBelow: Lsn;
  private readonly history: Record<number, string>;

  constructor(opts: MemSourceOptions) {
    this.systemId = opts.systemId ?? 7711737127714501519n;
    this.pgTimeline = opts.pgTimeline ?? 1;
    this.walSegSize = opts.walSegSize ?? 1 << 20;
    this.pgVersion = opts.pgVersion ?? 150018;
    this.commit = new LsnWatch(opts.commit);
    this.flush = new LsnWatch(opts.flush ?? opts.commit);
    this.removedBelow = opts.removedBelow ?? 0n;
    this.history = opts.history ?? {};
  }

  commitLsn(): Lsn {
    return this.commit.value;
  }

  flushLsn(): Lsn {
    return this.flush.value;
  }

  advance(commit: Lsn, flush: Lsn = commit): void {
    this.flush.advance(flush);
    this.commit.advance(commit);
  }

  async read(lsn: Lsn, buf: Uint8Array): Promise<number> {
    if (lsn >= this.flush.value) throw new Error(`read at ${lsn} beyond flush ${this.flush.value}`);
    const segno = segmentNumber(lsn, this.walSegSize);
    if (segno < segmentNumber(this.removedBelow, this.walSegSize)) throw new WalSegmentMissingError(segmentFileName(this.pgTimeline, segno, this.walSegSize));
    const n = Math.min(buf.length, this.walSegSize - segmentOffset(lsn, this.walSegSize));
    buf.set(walBytes(lsn, n));
    this.reads.push({ lsn, n });
    return n;
  }

  waitFor(lsn: Lsn, which: WaitTarget, signal: AbortSignal): Promise<void> {
    return (which === 'commit' ? this.commit : this.flush).waitPast(lsn, signal);
  }

  attachReader(info: ReaderInfo): ReaderHandle {
    return this.readers.attach(info);
  }

  timelineHistory(tli: number): Uint8Array | null {
    const h = this.history[tli];
    return h === undefined ? null : Buffer.from(h);
  }
}
