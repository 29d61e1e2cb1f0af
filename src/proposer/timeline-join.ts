// The checks before the voters of an election join the primary's term
// (docs/protocol.md §7.10): the safekeepers' stored identity (from their
// anonymous greetings' SafeKeeperInfo) against the primary's. Same system
// and PostgreSQL timeline: join as always. The primary on a newer timeline
// that forked from the stored one at X: the term starts at min(VCL, X), if
// the primary lacks no committed WAL — the donor's WAL in (X, VCL] may hold
// the torn start of a record, never a complete one. Anything else (another
// system, an older or unrelated timeline: an old primary) is refused.
import { WasmWalScanner } from '../hot/xlog.js';
import { formatLsn, type Lsn } from '../lsn.js';
import { decodeServerCopyData } from '../pq/streaming.js';
import { connectRecovery, type SafekeeperAccess } from './catch-up.js';
import type { ElectionWon } from './elect.js';
import { ProposerFatalError } from './errors.js';
import { storedIdentity } from './leader.js';
import type { PrimaryConnection, PrimaryIdentity } from './primary.js';
import type { SafeKeeperInfo } from '../protocol/types.js';
import type { SafekeeperLink } from './safekeeper.js';
import { forkPoint, readTimelineHistory, type TimelineHistory } from './timeline-history.js';

export interface JoinPlan {
  /** Where the term's WAL starts. */
  vcl: Lsn;
  commit: Lsn;
  /** The primary's timeline history, stored on each safekeeper before it joins; null on timeline 1. */
  history: TimelineHistory | null;
}

const BLCKSZ = 8192n;

/** The donor's WAL in [from, to) over its recovery stream (it serves up to its flush position). */
async function donorWal(donor: SafekeeperLink, access: SafekeeperAccess, timeline: number, from: Lsn, to: Lsn): Promise<Buffer> {
  const client = await connectRecovery(donor.address, access);
  const parts: Buffer[] = [];
  let pos = from;
  try {
    await new Promise<void>((resolve, reject) => {
      client
        .copyBoth(`START_REPLICATION ${formatLsn(from)} TIMELINE ${timeline}`, {
          data: (payload) => {
            const m = decodeServerCopyData(payload);
            if (m.kind !== 'xlogdata' || m.msg.dataStart !== pos) return;
            parts.push(Buffer.from(m.msg.wal));
            pos += BigInt(m.msg.wal.length);
            if (pos >= to) resolve();
          },
          end: (outcome) => (outcome.kind === 'error' ? reject(outcome.error) : resolve()),
        })
        .catch(reject);
      client.onClose(() => resolve());
    });
  } finally {
    client.close();
  }
  const all = Buffer.concat(parts);
  if (pos < to) throw new Error(`the donor ${donor.name} served WAL only up to ${formatLsn(pos)}, not ${formatLsn(to)}`);
  return all.subarray(0, Number(to - from));
}

/** True when a complete WAL record starts at `x` (a record boundary) and ends at or before `from + wal.length`. */
export function completeRecordAt(wal: Uint8Array, from: Lsn, x: Lsn, walSegSize: number): boolean {
  // At a page start the record follows the page header: scan from the page.
  const scanner = new WasmWalScanner({ walSegSize, startLsn: x, startKind: x % BLCKSZ === 0n ? 'page' : 'record' });
  try {
    scanner.feed(wal.subarray(Number(x - x % BLCKSZ - from)));
    return scanner.lastRecordLsn !== null;
  } finally {
    scanner.free();
  }
}

export interface JoinCheck {
  won: ElectionWon<SafekeeperLink>;
  primary: PrimaryIdentity;
  conn: PrimaryConnection;
  access: SafekeeperAccess;
}

/** A safekeeper's greeting, as the join checks read it. */
export interface GreetedMember {
  member: SafekeeperLink;
  info: SafeKeeperInfo;
}

/**
 * The refusals that need no vote: another database system, or a primary on
 * an older PostgreSQL timeline than a safekeeper holds (an old primary). A
 * stored system id never changes and a stored timeline only grows, so any
 * greeting tells — and checking before the vote keeps an old primary's
 * proposer from taking the term of the proposer that runs. The message names
 * the switch point when a safekeeper serves the history.
 */
export async function refuseStale(greeted: readonly GreetedMember[], primary: PrimaryIdentity, access: SafekeeperAccess): Promise<void> {
  const n = primary.timeline;
  let newest: { member: SafekeeperLink; timeline: number } | null = null;
  for (const g of greeted) {
    const s = storedIdentity(g.info.server);
    if (!s) continue;
    if (s.systemId !== primary.systemId) {
      throw new ProposerFatalError(`the safekeepers hold WAL of database system ${s.systemId}, the primary is system ${primary.systemId}`);
    }
    if (!newest || s.timeline > newest.timeline) newest = { member: g.member, timeline: s.timeline };
  }
  if (!newest || newest.timeline <= n) return;
  const p = newest.timeline;
  let how = '';
  try {
    const client = await connectRecovery(newest.member.address, access);
    try {
      const x = forkPoint(await readTimelineHistory(client, p), n);
      how = x === null ? `, which does not descend from timeline ${n}` : `, which forked from timeline ${n} at ${formatLsn(x)}`;
    } finally {
      client.close();
    }
  } catch {
    // The switch point is a detail of the message; the refusal stands without it.
  }
  throw new ProposerFatalError(`the primary is on PostgreSQL timeline ${n}, but the safekeepers hold WAL of PostgreSQL timeline ${p}${how}: is this an old primary? (refusing to join)`);
}

/** Decide how the voters join, or refuse (ProposerFatalError, one line). */
export async function planJoin({ won, primary, conn, access }: JoinCheck): Promise<JoinPlan> {
  const n = primary.timeline;
  const history = n >= 2 ? await readTimelineHistory(conn.client, n) : null;
  await refuseStale(won.voters.map((v) => ({ member: v.member, info: v.session.info })), primary, access);
  const donorInfo = won.voters.find((v) => v.member === won.donor)!.session.info;
  const p = donorInfo.server.timeline;
  let { vcl, commit } = won;
  if (vcl === 0n || p === 0 || p === n) return { vcl, commit, history };
  const x = forkPoint(history!, p);
  if (x === null) {
    throw new ProposerFatalError(`the primary is on PostgreSQL timeline ${n}, which does not descend from timeline ${p} that the safekeepers hold WAL of (refusing to join)`);
  }
  if (vcl > x) {
    const from = x - (x % BLCKSZ);
    const wal = await donorWal(won.donor, access, p, from, vcl);
    if (completeRecordAt(wal, from, x, primary.walSegSize)) {
      throw new ProposerFatalError(
        `the new primary lacks committed WAL: timeline ${n} forked from timeline ${p} at ${formatLsn(x)}, but the safekeepers hold committed WAL of timeline ${p} up to ${formatLsn(vcl)}`,
      );
    }
    vcl = x;
  }
  return { vcl, commit: commit > vcl ? vcl : commit, history };
}
