// START_WAL_PUSH: the proposer ↔ acceptor session (docs/protocol.md §3; the acceptor's rules §5, durability §6).
//
// The acceptor calls are synchronous: each SafeKeeperRequest is decoded,
// written into its segment and answered with a response that waits in this
// session's queue until a completed sync covers it. Messages already
// received are processed back to back; only when the socket has nothing
// more does the session ask the timeline for a sync. One sync then covers
// every append of the batch (group commit), and appends that arrive while
// it runs are covered by the next one. Socket reading never waits for a
// sync.
import type { AcceptorSession } from '../acceptor/acceptor.js';
import { formatLsn, type Lsn } from '../lsn.js';
import { commandComplete, copyBothResponse, copyData, copyDone, readyForQuery } from '../pq/backend.js';
import { FrontendTag } from '../pq/tags.js';
import { ConnectionClosed, type Message } from '../pq/connection.js';
import { PgError, SqlState } from '../pq/errors.js';
import { formatNodeId } from '../protocol/node-id.js';
import {
  decodeRequestVote,
  decodeSafeKeeperRequest,
  decodeServerInfo,
  encodeNodeId,
  encodeSafeKeeperInfo,
  encodeSafeKeeperResponse,
} from '../protocol/messages.js';
import { idFromBytes, type TimelineKey } from '../timeline/ids.js';
import type { DurabilityListener, PushSessionView, Timeline } from '../timeline/timeline.js';
import { DiskCapError, TimelineFailedError } from '../timeline/timeline.js';
import type { ClientSession } from '../server/context.js';
import type { CommandHandler } from '../server/dispatch.js';
import { ioSqlState, toPgError } from '../server/errors.js';
import { putHistoryCommands } from './put-history.js';

interface PendingResponse {
  through: Lsn;
  bytes: Buffer;
}

export class WalPushSession implements DurabilityListener {
  private readonly cs: ClientSession;
  private timeline: Timeline | undefined;
  private acceptor: AcceptorSession | undefined;
  private pending: PendingResponse[] = [];
  private head = 0;
  private aborted: PgError | undefined;
  private drainWaiter: (() => void) | undefined;
  private view: PushSessionView | undefined;
  private readonly started = performance.now();
  readonly stats = { appends: 0, walBytes: 0, responses: 0, syncsAtStart: 0 };

  constructor(cs: ClientSession) {
    this.cs = cs;
  }

  private get conn() {
    return this.cs.conn;
  }

  /** Run the session until the stream ends (true: the connection goes on) or fails (false). */
  async run(): Promise<boolean> {
    const log = this.cs.log;
    let unsubscribe: (() => void) | undefined;
    try {
      this.conn.send(copyBothResponse());
      const info = decodeServerInfo(await this.expectCopyData('ServerInfo'));
      const key = this.resolveKey(info.tenantId, info.timelineId);
      const tl = this.cs.ctx.registry.getOrCreate(key);
      if (tl.failure) throw new TimelineFailedError(tl.name, tl.failure);
      this.timeline = tl;
      this.view = this.makeView();
      tl.pushSessions.add(this.view);
      unsubscribe = tl.subscribe(this);
      this.stats.syncsAtStart = tl.stats.syncs;
      // Compute flush_lsn afresh from the files, once every write so far is durable.
      await tl.quiesce();
      const walEnd = await tl.scanWalEnd(info.walSegSize);
      this.acceptor = tl.acceptor.newSession();
      const greeting = this.acceptor.greet(info, walEnd);
      this.conn.send(copyData(encodeSafeKeeperInfo(greeting)));
      log.info(
        {
          timeline: tl.name,
          proposer: formatNodeId(info.nodeId),
          pgVersion: info.pgVersion,
          systemId: info.systemId.toString(),
          proposerWalEnd: formatLsn(info.walEnd),
          flushLsn: formatLsn(greeting.flushLsn),
          epoch: greeting.epoch.toString(),
          scanStop: tl.lastScan?.stopReason ?? 'no WAL',
        },
        'WAL push: greeted',
      );

      const req = decodeRequestVote(await this.expectCopyData('RequestVote'));
      const vote = this.acceptor.vote(req);
      this.conn.send(copyData(encodeNodeId(vote.reply)));
      if (!vote.granted) {
        log.info({ candidate: formatNodeId(req.nodeId), vote: formatNodeId(vote.reply) }, 'WAL push: vote refused');
        throw new PgError({
          severity: 'FATAL',
          code: SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE,
          message: `vote refused: candidate ${formatNodeId(req.nodeId)} is below the accepted node ${formatNodeId(vote.reply)}`,
        });
      }
      log.info({ node: formatNodeId(req.nodeId), vcl: formatLsn(req.vcl), epoch: req.epoch.toString() }, 'WAL push: vote granted');

      const goesOn = await this.appendLoop(tl);
      this.logEnd('WAL push: stream ended');
      return goesOn;
    } catch (err) {
      this.fail(err);
      return false;
    } finally {
      unsubscribe?.();
      if (this.timeline) {
        if (this.view) this.timeline.pushSessions.delete(this.view);
      }
    }
  }

  /** What the admin API shows of this session; disconnect() ends it (timeline deletion). */
  private makeView(): PushSessionView {
    const stats = this.stats;
    return {
      address: this.conn.remote,
      since: new Date(),
      get appends() {
        return stats.appends;
      },
      get walBytes() {
        return stats.walBytes;
      },
      disconnect: (message: string) => this.abort(new PgError({ severity: 'FATAL', code: SqlState.ADMIN_SHUTDOWN, message })),
    };
  }

  private resolveKey(tenantBytes: Uint8Array, timelineBytes: Uint8Array): TimelineKey {
    const key = { tenantId: idFromBytes(tenantBytes), timelineId: idFromBytes(timelineBytes) };
    const named = this.cs.named;
    if ((named.tenantId && named.tenantId !== key.tenantId) || (named.timelineId && named.timelineId !== key.timelineId)) {
      throw new PgError({
        severity: 'FATAL',
        code: SqlState.INVALID_PARAMETER_VALUE,
        message: `ServerInfo names timeline ${key.tenantId}/${key.timelineId} but the connection was opened for ${named.tenantId ?? '*'}/${named.timelineId ?? '*'}`,
      });
    }
    return key;
  }

  private async expectCopyData(what: string): Promise<Buffer> {
    const m = await this.conn.receive();
    if (m.tag === FrontendTag.CopyData) return m.body;
    throw this.unexpected(m, what);
  }

  private unexpected(m: Message, what: string): Error {
    if (m.tag === FrontendTag.Terminate) return new ConnectionClosed('client terminated the session');
    if (m.tag === FrontendTag.CopyFail) {
      return new PgError({ severity: 'FATAL', code: SqlState.PROTOCOL_VIOLATION, message: `COPY failed on the client: ${m.body.toString('utf8').replace(/\0+$/, '')}` });
    }
    const tag = m.tag >= 0x20 && m.tag < 0x7f ? `'${String.fromCharCode(m.tag)}'` : `0x${m.tag.toString(16)}`;
    return PgError.protocol(`unexpected message type ${tag} during WAL push: expected CopyData with ${what}`);
  }

  /** The append loop; returns true when the stream ended normally and the connection continues. */
  private async appendLoop(tl: Timeline): Promise<boolean> {
    const acceptor = this.acceptor!;
    for (;;) {
      if (this.aborted) throw this.aborted;
      if (this.cs.ctx.stopping) {
        await this.drain();
        throw new PgError({ severity: 'FATAL', code: SqlState.ADMIN_SHUTDOWN, message: 'terminating connection due to administrator command' });
      }
      let m = this.conn.tryReceive();
      if (!m) {
        // Nothing more has arrived: sync what this batch wrote, send what is durable, then wait.
        this.flushBatch(tl);
        m = await this.conn.receive();
        if (this.aborted) throw this.aborted;
      }
      if (m.tag === FrontendTag.CopyData) {
        const req = decodeSafeKeeperRequest(m.body);
        checkDiskCap(tl, req.beginLsn, req.endLsn);
        const r = acceptor.append(req);
        if (r.kind === 'end') {
          // Acknowledge what is owed, end our side of the COPY, then wait for the client's CopyDone.
          await this.drain();
          this.conn.send(copyDone());
          return this.awaitClientCopyDone();
        }
        tl.noteCommit(req.commitLsn);
        this.stats.appends++;
        this.stats.walBytes += req.wal.length;
        tl.stats.appends++;
        this.pending.push({ through: r.syncThrough, bytes: copyData(encodeSafeKeeperResponse(r.response)) });
        continue;
      }
      if (m.tag === FrontendTag.CopyDone) {
        await this.drain();
        this.conn.sendAll([copyDone(), commandComplete('START_WAL_PUSH'), readyForQuery('I')]);
        return true;
      }
      throw this.unexpected(m, 'a SafeKeeperRequest');
    }
  }

  /** After the end of the stream: skip late CopyData until the client's CopyDone, then CommandComplete + ReadyForQuery. */
  private async awaitClientCopyDone(): Promise<boolean> {
    for (;;) {
      const m = await this.conn.receive();
      if (m.tag === FrontendTag.CopyData) continue;
      if (m.tag === FrontendTag.CopyDone) {
        this.conn.sendAll([commandComplete('START_WAL_PUSH'), readyForQuery('I')]);
        return true;
      }
      throw this.unexpected(m, 'CopyDone after the end of the stream');
    }
  }

  private flushBatch(tl: Timeline): void {
    if (this.head === this.pending.length) return;
    tl.requestSync(this.pending[this.pending.length - 1].through);
    this.durable(tl.syncedLsn);
  }

  /** Wait until every queued response has been sent. */
  private async drain(): Promise<void> {
    const tl = this.timeline;
    if (!tl) return;
    while (this.head < this.pending.length) {
      if (this.aborted) throw this.aborted;
      const done = new Promise<void>((resolve) => {
        this.drainWaiter = resolve;
      });
      this.flushBatch(tl);
      if (this.head < this.pending.length) await done;
      this.drainWaiter = undefined;
    }
  }

  // ---- DurabilityListener ----

  durable(synced: Lsn): void {
    if (this.aborted) return;
    const out: Buffer[] = [];
    while (this.head < this.pending.length && this.pending[this.head].through <= synced) {
      out.push(this.pending[this.head].bytes);
      this.head++;
    }
    if (out.length > 0) {
      this.stats.responses += out.length;
      this.conn.sendAll(out);
    }
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
      const w = this.drainWaiter;
      this.drainWaiter = undefined;
      w?.();
    }
  }

  truncated(lsn: Lsn): void {
    for (let i = this.head; i < this.pending.length; i++) {
      if (this.pending[i].through > lsn) {
        this.abort(
          new PgError({
            severity: 'FATAL',
            code: SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE,
            message: `WAL from ${formatLsn(lsn)} on was truncated by a newer proposer before this session's writes were acknowledged`,
          }),
        );
        return;
      }
    }
  }

  failed(err: Error): void {
    this.abort(
      new PgError({
        severity: 'FATAL',
        code: ioSqlState(err),
        message: `WAL could not be made durable: ${err.message}`,
      }),
    );
  }

  /** End the session from a callback: nothing more is acknowledged, the client gets the error. */
  private abort(err: PgError): void {
    if (this.aborted) return;
    this.aborted = err;
    this.pending = [];
    this.head = 0;
    this.conn.fatal(err);
    const w = this.drainWaiter;
    this.drainWaiter = undefined;
    w?.();
  }

  private fail(err: unknown): void {
    const log = this.cs.log;
    const pgErr = this.aborted ?? toPgError(err);
    // Nothing queued may be sent after an error.
    this.pending = [];
    this.head = 0;
    if (pgErr) {
      if (pgErr.code === SqlState.INTERNAL_ERROR) log.error({ err }, 'WAL push failed');
      this.conn.fatal(pgErr);
      this.logEnd('WAL push: session ended with an error', { sqlstate: pgErr.code, error: pgErr.message });
    } else {
      this.logEnd('WAL push: client disconnected', { reason: (err as Error).message });
    }
  }

  private logEnd(msg: string, extra: Record<string, unknown> = {}): void {
    const tl = this.timeline;
    const secs = (performance.now() - this.started) / 1000;
    this.cs.log.info(
      {
        ...extra,
        timeline: tl?.name,
        appends: this.stats.appends,
        walBytes: this.stats.walBytes,
        responses: this.stats.responses,
        syncs: tl ? tl.stats.syncs - this.stats.syncsAtStart : 0,
        seconds: Math.round(secs * 1000) / 1000,
      },
      msg,
    );
  }
}

const startWalPush: CommandHandler = async (cs, args) => {
  if (args !== '') {
    throw new PgError({ code: SqlState.SYNTAX_ERROR, message: `syntax error: START_WAL_PUSH takes no arguments, got "${args}"` });
  }
  // The session sends its own CommandComplete + ReadyForQuery when the stream ends normally.
  return (await new WalPushSession(cs).run()) ? 'ready-sent' : false;
};

/** The WAL push commands (START_WAL_PUSH, PUT_TIMELINE_HISTORY), for a daemon's command table. */
export function walPushCommands(): Map<string, CommandHandler> {
  return new Map([['START_WAL_PUSH', startWalPush], ...putHistoryCommands()]);
}

/** Refuse an append over the timeline's disk cap as PostgreSQL refuses a write on a full disk (53100). */
function checkDiskCap(tl: Timeline, beginLsn: bigint, endLsn: bigint): void {
  try {
    tl.checkDiskCap(beginLsn, endLsn);
  } catch (err) {
    if (err instanceof DiskCapError) throw new PgError({ code: SqlState.DISK_FULL, message: err.message });
    throw err;
  }
}
