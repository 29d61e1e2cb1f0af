// Promoting a hot standby without losing committed WAL (`walkeeper
// promote`): sync the safekeepers (their VCL is the committed end of WAL),
// wait until the standby has received the VCL and replayed everything
// complete below it, promote it, and read where its new PostgreSQL timeline
// forked (docs/protocol.md §7.12).
import type { Logger } from '../log.js';
import { formatLsn, parseLsn, type Lsn } from '../lsn.js';
import { describeTarget, type ConnTarget } from './connstr.js';
import { PgClient } from './pg-client.js';
import { syncSafekeepers, type SyncOptions } from './sync.js';
import { readTimelineHistory } from './timeline-history.js';

export interface PromoteOptions {
  standby: ConnTarget;
  sync: Omit<SyncOptions, 'log'>;
  /** How long the standby may take to catch up, and to leave recovery. */
  timeoutMs: number;
  log: Logger;
}

export interface PromoteResult {
  vcl: Lsn;
  /** The new PostgreSQL timeline. */
  timeline: number;
  /** Where it forked from its parent. */
  switchLsn: Lsn;
}

/** The standby is not (or cannot be) promoted; it was left as it was. */
export class PromoteRefused extends Error {
  override readonly name = 'PromoteRefused';
}

/** How long replay must stand still, with the VCL received, before the standby counts as caught up. */
const REPLAY_SETTLE_MS = 500;
const POLL_MS = 100;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Positions {
  received: Lsn | null;
  replayed: Lsn | null;
}

async function positions(c: PgClient): Promise<Positions> {
  const row = (await c.query('SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()')).rows[0];
  return { received: row[0] ? parseLsn(row[0]) : null, replayed: row[1] ? parseLsn(row[1]) : null };
}

/**
 * Wait until the standby has replayed the VCL, or has received it and its
 * replay stands still: replay stops at the end of the last complete record,
 * and a torn record at the VCL is no WAL anyone committed.
 */
async function waitForReplay(c: PgClient, vcl: Lsn, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastReplay: Lsn | null = null;
  let stillSince = Date.now();
  for (;;) {
    const p = await positions(c);
    const now = Date.now();
    if (p.replayed !== lastReplay) {
      lastReplay = p.replayed;
      stillSince = now;
    }
    if (p.replayed !== null && p.replayed >= vcl) return;
    if (p.received !== null && p.received >= vcl && now - stillSince >= REPLAY_SETTLE_MS) return;
    if (now >= deadline) {
      const have = p.replayed ?? p.received ?? 0n;
      throw new PromoteRefused(
        `the standby has not caught up within ${Math.round(timeoutMs / 1000)}s: received ${p.received === null ? 'nothing' : formatLsn(p.received)}, replayed ${p.replayed === null ? 'nothing' : formatLsn(p.replayed)}, the safekeepers' VCL is ${formatLsn(vcl)} (${have < vcl ? vcl - have : 0n} bytes behind); not promoted`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** The standby's new timeline and its fork point, read over a replication connection. */
async function newTimeline(standby: ConnTarget): Promise<{ timeline: number; switchLsn: Lsn }> {
  const c = await PgClient.connect({ ...standby, replication: true });
  try {
    const timeline = Number((await c.query('IDENTIFY_SYSTEM')).rows[0][1]);
    const history = await readTimelineHistory(c, timeline);
    const last = history.entries[history.entries.length - 1];
    if (!last) throw new Error(`the history of PostgreSQL timeline ${timeline} lists no parent`);
    return { timeline, switchLsn: last.switchpoint };
  } finally {
    c.close();
  }
}

export async function promoteStandby(opts: PromoteOptions): Promise<PromoteResult> {
  const { log } = opts;
  let vcl: Lsn;
  // The standby is checked before the sync: a wrong connection string must not fence the running proposer.
  const c = await PgClient.connect({ ...opts.standby, applicationName: 'walkeeper-promote' }).catch((err: unknown) => {
    throw new PromoteRefused(`cannot connect to the standby ${describeTarget(opts.standby)}: ${(err as Error).message}`);
  });
  try {
    const row = (await c.query('SELECT pg_is_in_recovery(), system_identifier::text FROM pg_control_system()')).rows[0];
    if (row[0] !== 't') throw new PromoteRefused(`${describeTarget(opts.standby)} is not a standby (pg_is_in_recovery() is false)`);
    const synced = await syncSafekeepers({ ...opts.sync, log });
    vcl = synced.vcl;
    if (synced.identity && BigInt(row[1] ?? '0') !== synced.identity.systemId) {
      throw new PromoteRefused(`the standby is database system ${row[1]}, the safekeepers hold WAL of system ${synced.identity.systemId}`);
    }
    log.info({ vcl: formatLsn(vcl) }, 'waiting for the standby to replay the VCL');
    await waitForReplay(c, vcl, opts.timeoutMs);
    const waitSeconds = Math.max(1, Math.ceil(opts.timeoutMs / 1000));
    await c.query(`SELECT pg_promote(true, ${waitSeconds})`);
    const deadline = Date.now() + opts.timeoutMs;
    while ((await c.query('SELECT pg_is_in_recovery()')).rows[0][0] === 't') {
      if (Date.now() >= deadline) throw new Error(`the standby did not leave recovery within ${waitSeconds}s of pg_promote()`);
      await sleep(POLL_MS);
    }
  } finally {
    c.close();
  }
  const { timeline, switchLsn } = await newTimeline(opts.standby);
  log.info({ timeline, switchLsn: formatLsn(switchLsn), vcl: formatLsn(vcl) }, 'standby promoted');
  return { vcl, timeline, switchLsn };
}
