// The primary side of the quorum proposer: connect to the primary (retried
// with backoff), identify it and make sure its slot exists; once a term is
// won, stream its WAL into the leader's window from the window's end, feed
// every safekeeper link from it, keep the window bounded (pausing the
// primary while it is full of WAL the quorum lacks), and tell the primary
// the commit position and the safekeepers' hot standby feedback.
import type { Logger } from '../log.js';
import { formatLsn, type Lsn } from '../lsn.js';
import { U64_MAX } from '../protocol/layout.js';
import type { HotStandbyFeedback } from '../protocol/types.js';
import { InterruptibleSleep } from './backoff.js';
import { PgServerError } from './client.js';
import { describeTarget, type ConnTarget } from './connstr.js';
import { ProposerFatalError, Stopped, TimelineSwitchError } from './errors.js';
import type { Leader } from './leader.js';
import { PrimaryConnection, runSql, type PrimaryIdentity } from './primary.js';
import type { SafekeeperLink } from './safekeeper.js';
import type { WalWindow } from './wal-window.js';

export interface PrimaryStreamOptions {
  /** The primary, as a resolved connection string. */
  target: ConnTarget;
  /** application_name towards the primary. */
  applicationName: string;
  /** Physical replication slot on the primary (created if missing). */
  slot: string;
  /** WAL kept in memory. */
  maxBufferBytes: number;
  log: Logger;
  backoffMs(failures: number): number;
  /** The stream cannot go on (the primary is not the one whose WAL the safekeepers hold). */
  fatal(err: Error): void;
}

/**
 * The primary ended the stream. After a promotion it names the next
 * timeline and where this one ended (docs/protocol.md §11.6): the term ends.
 */
function endOfTimeline(timeline: number, rows: (string | null)[][]): Error {
  const next = Number(rows[0]?.[0] ?? 0);
  if (next > timeline) return new TimelineSwitchError(next, `the primary's PostgreSQL timeline ${timeline} ended at ${rows[0]?.[1] ?? '?'}; it is on timeline ${next} now`);
  return new Error('the primary ended the replication stream');
}

export class PrimaryStream {
  /** The primary as last identified; null until connected once. */
  identity: PrimaryIdentity | null = null;
  /** XLogData messages received. */
  messages = 0;
  /** Reading from the primary waits for the quorum (the window is full). */
  paused = false;
  private conn: PrimaryConnection | null = null;
  private stopping = false;
  private readonly retrySleep = new InterruptibleSleep();
  private problem = '';
  private streamedOnce = false;
  private bufferFullLogged = false;
  private pumpQueued = false;
  private leader: Leader | null = null;
  private window: WalWindow | null = null;
  private links: readonly SafekeeperLink[] = [];

  constructor(private readonly opts: PrimaryStreamOptions) {}

  /** Streaming now. */
  get streaming(): boolean {
    return this.conn !== null;
  }

  /** Connect, identify, make sure the slot exists; retried until it works or stop(). */
  async connect(): Promise<PrimaryConnection> {
    const { opts } = this;
    const { log } = opts;
    for (let failures = 1; ; failures++) {
      if (this.stopping) throw new Stopped();
      let conn: PrimaryConnection | null = null;
      try {
        conn = await PrimaryConnection.connect(opts.target, opts.applicationName);
        const id = await conn.identify();
        const known = this.identity;
        if (known && id.systemId !== known.systemId) {
          throw new ProposerFatalError(`the primary is now a different database system (${id.systemId}, was ${known.systemId})`);
        }
        if (known && id.timeline !== known.timeline) {
          throw new TimelineSwitchError(id.timeline, `the primary moved from PostgreSQL timeline ${known.timeline} to ${id.timeline}`);
        }
        this.identity = id;
        if (await conn.ensureSlot(opts.slot)) log.info({ slot: opts.slot }, 'created the physical replication slot on the primary');
        if (!known) {
          log.info(
            { primary: describeTarget(opts.target), systemId: id.systemId.toString(), timeline: id.timeline, xlogPos: formatLsn(id.xlogPos), walSegSize: id.walSegSize },
            'connected to the primary',
          );
        }
        return conn;
      } catch (err) {
        conn?.close();
        if (err instanceof ProposerFatalError || err instanceof TimelineSwitchError) throw err;
        if (this.stopping) throw new Stopped();
        this.unavailable(err);
        await this.retrySleep.sleep(opts.backoffMs(failures));
      }
    }
  }

  /** Stream into `leader`'s window until stop(), starting on `conn` (from connect()). */
  follow(leader: Leader, conn: PrimaryConnection): void {
    this.leader = leader;
    this.window = leader.window;
    this.links = leader.links;
    void this.loop(conn);
  }

  /** Tell the primary where the quorum got to, then leave. */
  stop(): void {
    this.stopping = true;
    this.retrySleep.wake();
    this.sendStatus();
    this.conn?.close();
    this.conn = null;
  }

  /** Standby status update: write = flush = apply = the commit position. */
  sendStatus(): void {
    const leader = this.leader;
    if (leader) this.conn?.sendStatus(leader.commit);
  }

  /** The safekeepers' combined hot standby feedback: the oldest xmin any of them needs. */
  sendFeedback(): void {
    const hs: HotStandbyFeedback = { ts: 0n, xmin: U64_MAX, catalogXmin: U64_MAX };
    for (const l of this.links) {
      if (!l.hs) continue;
      if (l.hs.xmin < hs.xmin) hs.xmin = l.hs.xmin;
      if (l.hs.catalogXmin < hs.catalogXmin) hs.catalogXmin = l.hs.catalogXmin;
    }
    this.conn?.sendFeedback(hs);
  }

  /**
   * Ask the primary for one small WAL record (an xid assignment whose commit
   * does not wait for synchronous replication): an idle primary writes
   * nothing, and until a quorum acknowledges WAL of the new term its
   * commits up to the VCL wait.
   */
  askForWalRecord(): void {
    const { opts } = this;
    runSql(opts.target, ['SET synchronous_commit TO local', 'SELECT txid_current()'], `${opts.applicationName}-kick`).then(
      () => opts.log.info('asked the primary for a WAL record so that this term can start committing'),
      (err) => opts.log.warn({ err: (err as Error).message }, 'could not ask the primary for a WAL record; waiting for its next one'),
    );
  }

  private unavailable(err: unknown): void {
    const { log, target } = this.opts;
    const msg = (err as Error)?.message ?? String(err);
    if (this.problem !== '') {
      if (msg !== this.problem) log.debug({ primary: describeTarget(target), err: msg }, 'primary still unavailable');
      this.problem = msg;
      return;
    }
    this.problem = msg;
    log.warn({ primary: describeTarget(target), err: msg }, 'primary unavailable; retrying with backoff');
  }

  private async loop(conn: PrimaryConnection | null): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        if (!conn) conn = await this.connect();
        await this.streamFrom(conn);
        failures = 0;
      } catch (err) {
        if (err instanceof Stopped || this.stopping) return;
        if (err instanceof ProposerFatalError || err instanceof TimelineSwitchError) return this.opts.fatal(err);
        this.unavailable(err);
        failures++;
      } finally {
        conn?.close();
        conn = null;
        this.conn = null;
      }
      if (this.stopping) return;
      await this.retrySleep.sleep(this.opts.backoffMs(Math.max(1, failures)));
    }
  }

  /** Stream from the end of the window until the stream breaks. */
  private streamFrom(conn: PrimaryConnection): Promise<void> {
    const id = this.identity!;
    const from = this.window!.end;
    const { slot, log } = this.opts;
    return new Promise<void>((resolve, reject) => {
      // WAL may arrive in the same read as the CopyBothResponse: be ready for it first.
      this.conn = conn;
      conn
        .stream(slot, from, id.timeline, {
          wal: (lsn, data) => this.onWal(conn, lsn, data),
          replyRequested: () => conn.sendStatus(this.leader!.commit),
          end: (outcome) => {
            if (outcome.kind === 'error') reject(this.classifyStreamError(outcome.error, from));
            else if (outcome.kind === 'closed') reject(outcome.error);
            else reject(endOfTimeline(id.timeline, outcome.rows));
          },
        })
        .then(() => {
          this.paused = false;
          if (this.problem !== '' || !this.streamedOnce) log.info({ from: formatLsn(from), slot }, 'streaming WAL from the primary');
          this.problem = '';
          this.streamedOnce = true;
          conn.sendStatus(this.leader!.commit);
          this.sendFeedback();
          this.checkWindow();
        }, (err) => reject(this.classifyStreamError(err, from)));
    });
  }

  private classifyStreamError(err: unknown, from: Lsn): Error {
    if (err instanceof PgServerError) {
      if (/has already been removed/.test(err.message)) {
        return new ProposerFatalError(
          `the primary no longer has the WAL at ${formatLsn(from)} that the safekeepers need (${err.message}); was slot "${this.opts.slot}" dropped or created after the WAL was removed?`,
        );
      }
      if (/ahead of the WAL flush position/.test(err.message)) {
        return new ProposerFatalError(`the safekeepers hold WAL up to ${formatLsn(from)}, beyond the primary's WAL (${err.message}): is this the primary whose WAL they hold?`);
      }
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  private onWal(conn: PrimaryConnection, lsn: Lsn, data: Uint8Array): void {
    if (this.conn !== conn) return;
    this.messages++;
    try {
      this.window!.push(lsn, data);
    } catch (err) {
      this.unavailable(err);
      conn.close();
      return;
    }
    // Pump once after every message of this read is in the window: what arrived together leaves together.
    if (!this.pumpQueued) {
      this.pumpQueued = true;
      queueMicrotask(this.pumpAll);
    }
  }

  private readonly pumpAll = (): void => {
    this.pumpQueued = false;
    for (const l of this.links) l.pump();
    this.checkWindow();
  };

  /** Keep memory bounded: drop WAL the quorum has, pause the primary while the window is full of WAL it lacks. */
  checkWindow(): void {
    const w = this.window;
    if (!w) return;
    const max = this.opts.maxBufferBytes;
    const commit = this.leader!.commit;
    const low = Math.floor(max * 0.75);
    if (w.bytes > max) w.shrinkTo(max, commit);
    const p = this.conn;
    if (!p) return;
    if (!this.paused && w.bytes > max) {
      this.paused = true;
      p.pause();
      if (!this.bufferFullLogged) {
        this.bufferFullLogged = true;
        this.opts.log.warn({ bytes: w.bytes, commitLsn: formatLsn(commit) }, 'WAL buffer full: reading from the primary waits for the quorum');
      }
    }
    if (this.paused) {
      // Make room below the commit position, and read again once a quarter of the buffer is free.
      w.shrinkTo(low, commit);
      if (w.bytes <= low) {
        this.paused = false;
        p.resume();
        if (this.bufferFullLogged) {
          this.bufferFullLogged = false;
          this.opts.log.info({ bytes: w.bytes, commitLsn: formatLsn(commit) }, 'WAL buffer has room again: reading from the primary');
        }
      }
    }
  }
}
