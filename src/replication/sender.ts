// The COPY BOTH phase of START_REPLICATION: WAL out as XLogData, keepalives,
// and the client's status updates and feedback in. Two loops share one
// stream: the send loop reads WAL from the source and writes it (waiting for
// the socket to drain, or for the source to get more WAL), the receive loop
// reads the client's messages. Whichever sees the end first settles the
// outcome and wakes the other; nothing here polls.
import { XLOG_BLCKSZ, type Lsn } from '../lsn.js';
import type { ClientMessage, ReplicationConnection } from './connection.js';
import { PgError, SqlState } from '../pq/errors.js';
import {
  allocXLogData,
  writeXLogDataHeaders,
  decodeClientCopyData,
  feedbackFromLegacy,
  feedbackFromPg,
  keepaliveMessage,
  pgNow,
  StreamMessageError,
  XLOGDATA_WAL_OFFSET,
} from '../pq/streaming.js';
import { copyDone } from '../pq/backend.js';
import { describeTag, FrontendTag } from '../pq/tags.js';
import { WalReadError, WalSegmentMissingError, type ReaderHandle, type WaitTarget, type WalReader, type WalSource } from './source.js';

/**
 * The most WAL one XLogData carries. PostgreSQL's walsender sends at most
 * 128 KiB (16 pages); its receivers (walreceiver, pg_receivewal, through
 * libpq) and ours take a CopyData of any length. A stream catching up sends
 * 1 MiB messages: an eighth of the reads, writes and wake-ups per GiB on
 * both ends (docs/performance.md §6). Under our own clients' frame limit
 * (1 MiB + 1 KiB, src/hot/frames.ts).
 */
export const MAX_SEND_SIZE = 1024 * 1024;
/** Written full-size message buffers a stream keeps for reuse while it catches up; dropped once it has. */
const SPARE_BUFFERS = 3;
/**
 * While the socket takes everything at once (write() returns true), the
 * send loop goes back to the event loop after this many bytes: other
 * connections get their turn (a WAL push must not wait long behind a
 * reader), and the write callbacks that hand buffers back for reuse run.
 * Less than one full message: a turn after every full message.
 */
const YIELD_BYTES = 256 * 1024;

export interface StreamPlan {
  /** First byte to send: the first XLogData starts exactly here. */
  startLsn: Lsn;
  /** Send CopyDone once everything before this position is sent; null = follow the WAL until the client stops. */
  endLsn: Lsn | null;
  /** The position that bounds what may be sent: commit for readers, flush for a recovering proposer. */
  follow: WaitTarget;
  /** Where the streamed timeline ends if it became historic while the stream runs (null while it is current). */
  timelineEnd?: () => Lsn | null;
}

export interface SenderOptions {
  /** Send a keepalive after this long without sending anything (default 10 s). */
  keepaliveIntervalMs?: number;
  /** End the stream after this long without any message from the client (default 60 s, 0 = never). */
  timeoutMs?: number;
  /** The daemon is shutting down: end the stream the way PostgreSQL does. */
  shutdown?: AbortSignal;
  /** Clock, as a PostgreSQL timestamp (tests). */
  now?: () => bigint;
}

export type CloseReason = 'terminate' | 'eof' | 'shutdown' | 'timeout';

export type StreamOutcome =
  /** Both sides sent CopyDone; the caller sends the command results and ReadyForQuery. */
  | { kind: 'done'; sentLsn: Lsn }
  /** An error to report (ErrorResponse, then ReadyForQuery unless it is FATAL). Nothing of it was sent yet. */
  | { kind: 'error'; error: PgError; sentLsn: Lsn }
  /** The session is over; on 'shutdown' the caller sends CommandComplete "COPY 0" before closing. */
  | { kind: 'closed'; reason: CloseReason; sentLsn: Lsn };

/** How a failed WAL read is reported: PostgreSQL's wording for a removed segment. */
export function readFailure(err: unknown): PgError {
  if (err instanceof WalSegmentMissingError) {
    return new PgError({ code: SqlState.UNDEFINED_FILE, message: `requested WAL segment ${err.segmentName} has already been removed` });
  }
  if (err instanceof WalReadError) return new PgError({ code: err.short ? SqlState.DATA_CORRUPTED : SqlState.IO_ERROR, message: err.message });
  return new PgError({ code: SqlState.INTERNAL_ERROR, message: `could not read WAL: ${(err as Error)?.message ?? String(err)}` });
}

/** One XLogData message read from the source (or the reason it could not be). */
interface Chunk {
  start: Lsn;
  upto: Lsn;
  /** The reader's generation when the read began. */
  gen: number;
  msg: Buffer;
  error?: unknown;
}

class WalStream {
  private sent: Lsn;
  private doneSending = false;
  private outcome: StreamOutcome | null = null;
  private readonly ac = new AbortController();
  private readonly aborted: Promise<void>;
  private lastSendMs = Date.now();
  private lastRecvMs = Date.now();
  /** A keepalive asking for a reply went out since the client last spoke. */
  private pingSent = false;
  private readonly keepaliveMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => bigint;
  /** Full-size message buffers the socket has written, ready for reuse. */
  private readonly spare: Buffer[] = [];
  /** Where WAL is read from: the source's per-stream reader when it has one. */
  private readonly files: WalReader;

  constructor(
    private readonly conn: ReplicationConnection,
    private readonly source: WalSource,
    private readonly reader: ReaderHandle,
    private readonly plan: StreamPlan,
    private readonly opts: SenderOptions,
  ) {
    this.sent = plan.startLsn;
    this.keepaliveMs = opts.keepaliveIntervalMs ?? 10_000;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.now = opts.now ?? pgNow;
    this.files = source.openReader?.() ?? { read: (lsn, buf) => source.read(lsn, buf), close: () => {} };
    this.aborted = new Promise((resolve) => this.ac.signal.addEventListener('abort', () => resolve(), { once: true }));
  }

  async run(): Promise<StreamOutcome> {
    const shutdown = this.opts.shutdown;
    const onShutdown = (): void => this.finish({ kind: 'closed', reason: 'shutdown', sentLsn: this.sent });
    if (shutdown?.aborted) onShutdown();
    else shutdown?.addEventListener('abort', onShutdown, { once: true });
    const tick = Math.max(5, Math.floor(Math.min(this.keepaliveMs, this.timeoutMs > 0 ? this.timeoutMs / 2 : Infinity) / 2));
    const timer = setInterval(() => this.onTick(), tick);
    timer.unref();
    try {
      await Promise.all([this.guard(() => this.sendLoop()), this.guard(() => this.receiveLoop())]);
    } finally {
      clearInterval(timer);
      shutdown?.removeEventListener('abort', onShutdown);
      this.files.close();
    }
    return this.outcome ?? { kind: 'closed', reason: 'eof', sentLsn: this.sent };
  }

  private async guard(loop: () => Promise<void>): Promise<void> {
    try {
      await loop();
    } catch (err) {
      this.finish({ kind: 'error', error: new PgError({ code: SqlState.INTERNAL_ERROR, message: (err as Error)?.message ?? String(err) }), sentLsn: this.sent });
    }
  }

  /** The first outcome wins; both loops are woken to stop. */
  private finish(outcome: StreamOutcome): void {
    if (this.outcome) return;
    this.outcome = outcome;
    this.ac.abort();
  }

  private write(bytes: Uint8Array, written?: () => void): boolean {
    this.lastSendMs = Date.now();
    return this.conn.send(bytes, written);
  }

  /** A message buffer for `n` bytes of WAL: a full-size one the socket has written already, when there is one. */
  private messageBuffer(start: Lsn, limit: Lsn, n: number): Buffer {
    const spare = n === MAX_SEND_SIZE ? this.spare.pop() : undefined;
    return spare ? writeXLogDataHeaders(spare, start, limit, this.now(), n) : allocXLogData(start, limit, this.now(), n);
  }

  private sendKeepalive(replyRequested: boolean): void {
    this.write(keepaliveMessage(this.sent, this.now(), replyRequested));
  }

  private recycle(msg: Buffer): void {
    if (this.spare.length < SPARE_BUFFERS) this.spare.push(msg);
  }

  /** Our CopyDone: after it, no more CopyData from us. */
  private endSending(): void {
    if (this.doneSending) return;
    this.doneSending = true;
    this.write(copyDone());
  }

  private onTick(): void {
    if (this.outcome) return;
    const now = Date.now();
    const quiet = now - this.lastRecvMs;
    if (this.timeoutMs > 0 && quiet >= this.timeoutMs) {
      this.finish({ kind: 'closed', reason: 'timeout', sentLsn: this.sent });
      return;
    }
    if (this.doneSending) return;
    // As PostgreSQL: half the timeout without a word from the client → ask for a reply, once,
    // even while WAL is flowing; otherwise a keepalive when nothing was sent for a while.
    if (this.timeoutMs > 0 && quiet >= this.timeoutMs / 2 && !this.pingSent) {
      this.pingSent = true;
      this.sendKeepalive(true);
    } else if (now - this.lastSendMs >= this.keepaliveMs) {
      this.sendKeepalive(false);
    }
  }

  /** Where the stream ends: its planned end, or the switch point of a timeline that became historic. */
  private end(): Lsn | null {
    const planned = this.plan.endLsn;
    const fork = this.plan.timelineEnd?.() ?? null;
    if (fork === null) return planned;
    return planned !== null && planned < fork ? planned : fork;
  }

  /** Where sending must stop for now. */
  private limit(): Lsn {
    const pos = this.plan.follow === 'commit' ? this.source.commitLsn() : this.source.flushLsn();
    const end = this.end();
    return end !== null && end < pos ? end : pos;
  }

  /**
   * Read the next message at `start`, with WAL below `limit`. As PostgreSQL:
   * up to 128 KiB; when more is pending, cut at a page boundary. Never
   * rejects: a failure comes back in `error`.
   */
  private readChunk(start: Lsn, limit: Lsn): Promise<Chunk> {
    let upto = start + BigInt(MAX_SEND_SIZE);
    if (limit <= upto) upto = limit;
    else upto -= upto % BigInt(XLOG_BLCKSZ);
    const n = Number(upto - start);
    const gen = this.files.generation ?? 0;
    const msg = this.messageBuffer(start, limit, n);
    const read = async (): Promise<Chunk> => {
      try {
        let got = 0;
        while (got < n) {
          const r = await this.files.read(start + BigInt(got), msg.subarray(XLOGDATA_WAL_OFFSET + got, XLOGDATA_WAL_OFFSET + n));
          if (!(r > 0)) throw new Error(`WAL source returned ${r} bytes at ${start + BigInt(got)}`);
          got += r;
        }
        return { start, upto, gen, msg };
      } catch (error) {
        return { start, upto, gen, msg, error: error ?? new Error('read failed') };
      }
    };
    return read();
  }

  private async sendLoop(): Promise<void> {
    const signal = this.ac.signal;
    // The next message, read while the socket drained the previous one.
    let ahead: Promise<Chunk> | null = null;
    let sinceYield = 0;
    while (!this.outcome && !this.doneSending) {
      const end = this.end();
      if (end !== null && this.sent >= end) {
        this.endSending();
        return;
      }
      const limit = this.limit();
      if (this.sent >= limit) {
        ahead = null;
        // Caught up: the next messages are small; give the full-size buffers back.
        this.spare.length = 0;
        await this.source.waitFor(this.sent, this.plan.follow, signal);
        continue;
      }
      let chunk = ahead ? await ahead : null;
      ahead = null;
      // A read made ahead counts only while it is within what may be sent and no WAL was rewritten since.
      if (!chunk || chunk.error !== undefined || chunk.start !== this.sent || chunk.upto > limit || chunk.gen !== (this.files.generation ?? 0)) {
        chunk = await this.readChunk(this.sent, limit);
      }
      if (chunk.error !== undefined) {
        this.finish({ kind: 'error', error: readFailure(chunk.error), sentLsn: this.sent });
        return;
      }
      // The client may have ended the stream while we were reading.
      if (this.outcome || this.doneSending) return;
      const msg = chunk.msg;
      // Full-size buffers are used again once written: bulk streaming then allocates (and collects) next to nothing.
      const ok = this.write(msg, msg.length === XLOGDATA_WAL_OFFSET + MAX_SEND_SIZE ? () => this.recycle(msg) : undefined);
      this.sent = chunk.upto;
      this.reader.sent(chunk.upto);
      // Read the next message while the socket drains this one.
      const next = this.limit();
      if (this.sent < next) ahead = this.readChunk(this.sent, next);
      if (!ok) {
        await Promise.race([this.conn.drain(), this.aborted]);
        sinceYield = 0;
      } else if ((sinceYield += chunk.msg.length) >= YIELD_BYTES) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sinceYield = 0;
      }
    }
  }

  private async receiveLoop(): Promise<void> {
    const signal = this.ac.signal;
    while (!this.outcome) {
      let msg: ClientMessage | null;
      try {
        msg = await this.conn.nextMessage(signal);
      } catch (err) {
        if (this.outcome) return;
        throw err;
      }
      if (this.outcome) return;
      if (msg === null) {
        this.finish({ kind: 'closed', reason: 'eof', sentLsn: this.sent });
        return;
      }
      this.lastRecvMs = Date.now();
      this.pingSent = false;
      switch (msg.tag) {
        case FrontendTag.CopyData:
          this.onCopyData(msg.body);
          break;
        case FrontendTag.CopyDone:
          // The client is done: answer with our CopyDone (unless sent already); COPY is over.
          this.endSending();
          this.finish({ kind: 'done', sentLsn: this.sent });
          return;
        case FrontendTag.Terminate:
          this.finish({ kind: 'closed', reason: 'terminate', sentLsn: this.sent });
          return;
        default:
          this.protocolViolation(`unexpected message type "${describeTag(msg.tag, 'bare')}"`);
          return;
      }
    }
  }

  private protocolViolation(message: string): void {
    this.finish({ kind: 'error', error: new PgError({ code: SqlState.PROTOCOL_VIOLATION, message, severity: 'FATAL' }), sentLsn: this.sent });
  }

  private onCopyData(body: Uint8Array): void {
    let m;
    try {
      m = decodeClientCopyData(body);
    } catch (err) {
      if (err instanceof StreamMessageError) {
        this.protocolViolation(err.message);
        return;
      }
      throw err;
    }
    switch (m.kind) {
      case 'status':
        this.reader.update({ writeLsn: m.msg.writeLsn, flushLsn: m.msg.flushLsn, applyLsn: m.msg.applyLsn, clientTime: m.msg.clientTime });
        if (m.msg.replyRequested && !this.doneSending) this.sendKeepalive(false);
        break;
      case 'hs':
        this.reader.feedback(feedbackFromPg(m.msg));
        break;
      case 'legacy-hs':
        this.reader.feedback(feedbackFromLegacy(m.msg));
        break;
    }
  }
}

/**
 * Run the COPY BOTH phase after CopyBothResponse was sent. Returns once the
 * stream is over; the caller sends what comes after (see StreamOutcome).
 */
export function streamWal(conn: ReplicationConnection, source: WalSource, reader: ReaderHandle, plan: StreamPlan, opts: SenderOptions = {}): Promise<StreamOutcome> {
  return new WalStream(conn, source, reader, plan, opts).run();
}
