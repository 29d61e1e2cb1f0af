// Catching a safekeeper up from a peer: WAL that is no longer in the
// proposer's memory is read from another safekeeper's recovery stream
// (application_name wal_proposer_recovery) and appended to the lagging one,
// up to what the peer is known to hold as the leader's WAL.
import type { Logger } from '../log.js';
import { formatLsn, type Lsn } from '../lsn.js';
import { MAX_WAL_PER_REQUEST } from '../protocol/layout.js';
import { decodeServerCopyData, encodeStatusUpdate, pgNow, RECOVERY_APPLICATION_NAME } from '../pq/streaming.js';
import { PgServerError } from './client.js';
import { PgClient } from './pg-client.js';

/** What a replication connection to a safekeeper needs. */
export interface SafekeeperAccess {
  readonly tenantId: string;
  readonly timelineId: string;
  readonly password: string | undefined;
}

/** A replication connection to a safekeeper as a recovering proposer: it serves up to its flush position (§11.2). */
export function connectRecovery(address: { host: string; port: number }, access: SafekeeperAccess): Promise<PgClient> {
  return PgClient.connect({
    host: address.host,
    port: address.port,
    user: 'walproposer',
    database: 'replication',
    password: access.password,
    replication: true,
    applicationName: RECOVERY_APPLICATION_NAME,
    params: { ztenantid: access.tenantId, ztimelineid: access.timelineId },
    connectTimeoutMs: 5000,
  });
}

/** The safekeeper being caught up. */
export interface CatchUpTarget {
  readonly name: string;
  readonly inflightBytes: number;
  /** One append; false when its session is gone. */
  sendAppend(begin: Lsn, wal: Uint8Array): boolean;
}

/** The peer serving the WAL. */
export interface CatchUpSource {
  readonly name: string;
  readonly address: { host: string; port: number };
  /** Its WAL below this is the leader's. */
  readonly good: Lsn;
  /** It could not serve WAL at `lsn` (the segment is gone). */
  noteMissing(lsn: Lsn): void;
}

export interface CatchUpSettings extends SafekeeperAccess {
  readonly log: Logger;
  /** WAL bytes in flight to one safekeeper. */
  readonly windowBytes: number;
}

/** What a catch-up needs to know of the term. */
export interface CatchUpLeader {
  readonly pgTimeline: number;
  readonly window: { readonly start: Lsn };
}

/**
 * A recovery stream from `peer` into `target`: WAL from `from` up to what the
 * peer is known to hold, until the target reaches the proposer's window.
 * The peer's socket is paused while the target has a full window in flight.
 */
export class CatchUp {
  private client: PgClient | null = null;
  private paused = false;
  private cancelled = false;
  private pos: Lsn;
  private readonly limit: Lsn;

  constructor(
    private readonly target: CatchUpTarget,
    private readonly peer: CatchUpSource,
    private readonly settings: CatchUpSettings,
    private readonly leader: CatchUpLeader,
    from: Lsn,
  ) {
    this.pos = from;
    this.limit = peer.good;
  }

  /** Resolves when the stream is over; true when it moved the target forward. */
  async run(): Promise<boolean> {
    const start = this.pos;
    const { settings } = this;
    try {
      const client = await connectRecovery(this.peer.address, settings);
      if (this.cancelled) {
        client.close();
        return false;
      }
      this.client = client;
      await new Promise<void>((resolve, reject) => {
        client
          .copyBoth(`START_REPLICATION ${formatLsn(this.pos)} TIMELINE ${this.leader.pgTimeline}`, {
            data: (payload) => this.onData(payload),
            end: (outcome) => {
              if (outcome.kind === 'error') reject(outcome.error);
              else resolve();
            },
          })
          .catch(reject);
        client.onClose(() => resolve());
      });
    } catch (err) {
      if (!this.cancelled) {
        if (err instanceof PgServerError && /has already been removed/.test(err.message)) this.peer.noteMissing(this.pos);
        settings.log.warn({ safekeeper: this.target.name, from: this.peer.name, lsn: formatLsn(this.pos), err: (err as Error).message }, 'catch-up from a peer failed');
      }
    } finally {
      this.client?.close();
      this.client = null;
    }
    return this.pos > start;
  }

  private onData(payload: Buffer): void {
    if (this.cancelled) return;
    const m = decodeServerCopyData(payload);
    if (m.kind === 'keepalive') {
      if (m.msg.replyRequested) this.client?.send(encodeStatusUpdate({ writeLsn: this.pos, flushLsn: 0n, applyLsn: 0n, clientTime: pgNow(), replyRequested: false }));
      return;
    }
    const { dataStart, wal } = m.msg;
    if (dataStart !== this.pos) {
      this.finish();
      return;
    }
    let take = wal;
    const room = this.limit - this.pos;
    if (BigInt(take.length) > room) take = take.subarray(0, Number(room));
    for (let off = 0; off < take.length; off += MAX_WAL_PER_REQUEST) {
      const part = take.subarray(off, Math.min(take.length, off + MAX_WAL_PER_REQUEST));
      if (!this.target.sendAppend(this.pos, part)) {
        this.finish();
        return;
      }
      this.pos += BigInt(part.length);
    }
    // Done once the target can go on from memory, or the peer has nothing more we trust.
    if (this.pos >= this.limit || this.pos >= this.leader.window.start) {
      this.finish();
      return;
    }
    if (!this.paused && this.target.inflightBytes >= this.settings.windowBytes) {
      this.paused = true;
      this.client?.pause();
    }
  }

  /** The target acknowledged something: resume the peer when there is room again. */
  acked(): void {
    if (this.paused && this.target.inflightBytes < this.settings.windowBytes / 2) {
      this.paused = false;
      this.client?.resume();
    }
  }

  private finish(): void {
    this.client?.close();
  }

  cancel(): void {
    this.cancelled = true;
    this.client?.close();
  }
}
