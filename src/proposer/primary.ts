// The quorum proposer's connection to the primary: a physical replication
// client with its own slot. It identifies the system, makes sure the slot
// exists, streams WAL from a given position, and sends the standby status
// updates ('r': write = flush = apply = the quorum's commit position) and
// hot standby feedback ('h') that make the primary's synchronous
// replication wait for the quorum and keep the rows its readers need.
import { formatLsn, isValidWalSegSize, parseLsn, type Lsn } from '../lsn.js';
import type { HotStandbyFeedback } from '../protocol/types.js';
import { decodeServerCopyData, encodePgHsFeedback, encodeStatusUpdate, pgNow } from '../pq/streaming.js';
import { U64_MAX } from '../protocol/layout.js';
import { PgServerError } from './client.js';
import type { ConnTarget } from './connstr.js';
import { PgClient, type CopyOutcome } from './pg-client.js';

export interface PrimaryIdentity {
  systemId: bigint;
  /** PostgreSQL TimeLineID. */
  timeline: number;
  /** The primary's flush position when asked. */
  xlogPos: Lsn;
  walSegSize: number;
  /** server_version_num. */
  pgVersion: number;
}

/** Slot names as PostgreSQL accepts them. */
export const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/** Parse `SHOW wal_segment_size` output ("16MB", "1GB", "1024kB"). */
export function parseWalSegSize(text: string): number {
  const m = /^(\d+)\s*(B|kB|MB|GB)?$/.exec(text.trim());
  if (!m) throw new Error(`cannot parse wal_segment_size "${text}"`);
  const mult = { B: 1, kB: 1024, MB: 1 << 20, GB: 1 << 30 }[(m[2] ?? 'B') as 'B' | 'kB' | 'MB' | 'GB'];
  const bytes = Number(m[1]) * mult;
  if (!isValidWalSegSize(bytes)) throw new Error(`wal_segment_size ${text} is not a power of two from 1 MB to 1 GB`);
  return bytes;
}

function one(rows: (string | null)[][], what: string): (string | null)[] {
  if (rows.length !== 1) throw new Error(`${what}: expected 1 row, got ${rows.length}`);
  return rows[0];
}

export interface StreamCallbacks {
  /** WAL bytes starting at `lsn` (the payload is owned by the callee). */
  wal(lsn: Lsn, data: Uint8Array, walEnd: Lsn): void;
  /** The primary asked for a status update now. */
  replyRequested(): void;
  /** The stream is over (connection lost, error, or the primary ended it). */
  end(outcome: CopyOutcome): void;
}

/** One replication connection to the primary. */
export class PrimaryConnection {
  private streaming = false;
  private lastHs: string | null = null;

  private constructor(readonly client: PgClient) {}

  static async connect(target: ConnTarget, applicationName: string): Promise<PrimaryConnection> {
    const client = await PgClient.connect({ ...target, replication: true, applicationName });
    return new PrimaryConnection(client);
  }

  async identify(): Promise<PrimaryIdentity> {
    const id = one((await this.client.query('IDENTIFY_SYSTEM')).rows, 'IDENTIFY_SYSTEM');
    const seg = one((await this.client.query('SHOW wal_segment_size')).rows, 'SHOW wal_segment_size');
    const ver = one((await this.client.query('SHOW server_version_num')).rows, 'SHOW server_version_num');
    return {
      systemId: BigInt(id[0] ?? '0'),
      timeline: Number(id[1]),
      xlogPos: parseLsn(id[2] ?? '0/0'),
      walSegSize: parseWalSegSize(seg[0] ?? ''),
      pgVersion: Number(ver[0] ?? '0'),
    };
  }

  /** Create the physical slot unless it exists; true when it was created. */
  async ensureSlot(slot: string): Promise<boolean> {
    const r = one((await this.client.query(`READ_REPLICATION_SLOT ${slot}`)).rows, 'READ_REPLICATION_SLOT');
    if (r[0] !== null) {
      if (r[0] !== 'physical') throw new Error(`replication slot "${slot}" on the primary is a ${r[0]} slot; a physical one is needed`);
      return false;
    }
    try {
      await this.client.query(`CREATE_REPLICATION_SLOT "${slot}" PHYSICAL (RESERVE_WAL)`);
      return true;
    } catch (err) {
      // Created by someone else in between.
      if (err instanceof PgServerError && err.code === '42710') return false;
      throw err;
    }
  }

  /** START_REPLICATION SLOT from `start`; resolves once the stream is open. */
  async stream(slot: string, start: Lsn, timeline: number, cb: StreamCallbacks): Promise<void> {
    await this.client.copyBoth(`START_REPLICATION SLOT "${slot}" PHYSICAL ${formatLsn(start)} TIMELINE ${timeline}`, {
      data: (payload) => {
        const m = decodeServerCopyData(payload);
        if (m.kind === 'xlogdata') {
          if (m.msg.wal.length > 0) cb.wal(m.msg.dataStart, m.msg.wal, m.msg.walEnd);
        } else if (m.msg.replyRequested) {
          cb.replyRequested();
        }
      },
      end: (outcome) => {
        this.streaming = false;
        cb.end(outcome);
      },
    });
    this.streaming = true;
  }

  /** Standby status update: everything up to `commit` is written, flushed and applied as far as the primary needs to know. */
  sendStatus(commit: Lsn, replyRequested = false): void {
    if (!this.streaming) return;
    this.client.send(encodeStatusUpdate({ writeLsn: commit, flushLsn: commit, applyLsn: commit, clientTime: pgNow(), replyRequested }));
  }

  /** Hot standby feedback, sent only when it differs from what was sent last. */
  sendFeedback(hs: HotStandbyFeedback, force = false): void {
    if (!this.streaming) return;
    const split = (x: bigint): [number, number] => (x === U64_MAX ? [0, 0] : [Number(x & 0xffffffffn), Number((x >> 32n) & 0xffffffffn)]);
    const [xmin, xminEpoch] = split(hs.xmin);
    const [catalogXmin, catalogXminEpoch] = split(hs.catalogXmin);
    const key = `${xmin}/${xminEpoch}/${catalogXmin}/${catalogXminEpoch}`;
    if (!force && key === this.lastHs) return;
    this.lastHs = key;
    this.client.send(encodePgHsFeedback({ clientTime: pgNow(), xmin, xminEpoch, catalogXmin, catalogXminEpoch }));
  }

  pause(): void {
    this.client.pause();
  }

  resume(): void {
    this.client.resume();
  }

  close(): void {
    this.streaming = false;
    this.client.close();
  }
}

/** Run one statement on an ordinary (non-replication) connection and close it. */
export async function runSql(target: ConnTarget, sql: string[], applicationName: string): Promise<void> {
  const c = await PgClient.connect({ ...target, applicationName });
  try {
    for (const s of sql) await c.query(s);
  } finally {
    c.close();
  }
}
