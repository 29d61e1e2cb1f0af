// Bringing the safekeepers to one point without a primary (`walkeeper
// sync-safekeepers`, and the first step of `walkeeper promote`): win an
// election with a higher term (that fences a running proposer: its next
// append is refused), let every safekeeper that answered join with the
// donor's stored identity, recover the lagging ones to the VCL from the
// donor, and tell each of them commit = VCL. The VCL is the result: the
// point a new primary must have replayed (docs/protocol.md §7.11).
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { formatLsn, type Lsn } from '../lsn.js';
import { quorumSize } from './election.js';
import { backoffMs, InterruptibleSleep } from './backoff.js';
import { connectRecovery } from './catch-up.js';
import { elect, type ElectionMember, type ElectionWon, type Greeted } from './elect.js';
import { LostLeadershipError } from './errors.js';
import { anonymousGreeting, Leader, storedIdentity, type SystemIdentity } from './leader.js';
import type { LinkEvents } from './link-contract.js';
import { SafekeeperLink, type SafekeeperAddress } from './safekeeper.js';
import { readTimelineHistory, type TimelineHistory } from './timeline-history.js';

export interface SyncOptions {
  safekeepers: SafekeeperAddress[];
  /** 32 hex digits each. */
  tenantId: string;
  timelineId: string;
  /** Password (or token) for the safekeepers, if they ask for one. */
  password?: string;
  /** How long a quorum may take to answer the election; also how long the join may go without progress. */
  timeoutMs: number;
  log: Logger;
}

export interface SyncResult {
  /** The point every synced safekeeper holds and has as its commit position; 0 for an empty timeline. */
  vcl: Lsn;
  /** The database system whose WAL the safekeepers hold; null for an empty timeline. */
  identity: SystemIdentity | null;
  /** The safekeepers that acknowledged commit = VCL. */
  synced: string[];
  /** The term the election won. */
  term: bigint;
}

/** No quorum answered, or none could be brought to the VCL, in time. */
export class NoQuorumError extends Error {
  override readonly name = 'NoQuorumError';
}

/** An election member that remembers each safekeeper's last failure, for the one-line error. */
class Member implements ElectionMember {
  lastProblem = '';
  constructor(readonly link: SafekeeperLink) {}
  get name(): string {
    return this.link.name;
  }
  greet(server: Parameters<SafekeeperLink['greet']>[0]): Promise<Greeted> {
    return this.link.greet(server);
  }
  problem(err: unknown, what: string): void {
    this.lastProblem = `${what}: ${(err as Error)?.message ?? String(err)}`;
    this.link.problem(err, what);
  }
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** Run elections until one is won or `timeoutMs` passed. */
async function electWithin(members: Member[], opts: SyncOptions, uuid: Uint8Array): Promise<ElectionWon<Member>> {
  const deadline = Date.now() + opts.timeoutMs;
  const tenant = hexBytes(opts.tenantId);
  const timeline = hexBytes(opts.timelineId);
  const sleep = new InterruptibleSleep();
  let highestSeen = 0n;
  let reason = '';
  for (let attempt = 1; ; attempt++) {
    try {
      const outcome = await elect({
        members,
        uuid,
        highestSeen,
        greeting: (nodeId) => anonymousGreeting(tenant, timeline, nodeId),
        graceMs: 1000,
        log: opts.log,
      });
      highestSeen = outcome.highestSeen;
      if (outcome.won) return outcome;
      reason = outcome.reason;
    } catch (err) {
      // A proposer voted in between: the next attempt goes above it.
      if (!(err instanceof LostLeadershipError)) throw err;
      reason = err.message;
      highestSeen += 1n;
    }
    const wait = backoffMs(attempt, 100, 1000);
    if (Date.now() + wait >= deadline) break;
    await sleep.sleep(wait);
  }
  const problems = members.filter((m) => m.lastProblem !== '').map((m) => `${m.name}: ${m.lastProblem}`);
  throw new NoQuorumError(`no quorum: ${reason}${problems.length ? ` (${problems.join('; ')})` : ''}`);
}

/**
 * The donor's history file on a timeline ≥ 2: a safekeeper still on an
 * older PostgreSQL timeline (it was down when the others moved) gets it
 * before its greeting, so the greeting moves it.
 */
async function historyFor(donor: Member, identity: SystemIdentity, opts: SyncOptions): Promise<TimelineHistory | null> {
  if (identity.timeline < 2) return null;
  const client = await connectRecovery(donor.link.address, { tenantId: opts.tenantId, timelineId: opts.timelineId, password: opts.password });
  try {
    return await readTimelineHistory(client, identity.timeline);
  } finally {
    client.close();
  }
}

export async function syncSafekeepers(opts: SyncOptions): Promise<SyncResult> {
  const { log } = opts;
  const uuid = hexBytes(randomUUID().replace(/-/g, ''));
  let failure: Error | null = null;
  let wake: () => void = () => {};
  const events: LinkEvents = {
    joined: () => {
      for (const l of links) l.peerAvailable();
    },
    acked: () => {},
    feedbackChanged: () => {},
    answered: () => wake(),
    fatal: (err) => {
      failure = err;
      wake();
    },
  };
  const settings = {
    log,
    tenantId: opts.tenantId.toLowerCase(),
    timelineId: opts.timelineId.toLowerCase(),
    password: opts.password,
    windowBytes: 8 << 20,
    pipelineDepth: 4,
    backoffMs: (failures: number) => backoffMs(failures, 100, 1000),
  };
  const links = opts.safekeepers.map((a) => new SafekeeperLink(a, settings, events));
  const members = links.map((l) => new Member(l));
  const won = await electWithin(members, opts, uuid);
  // Every voter joins afresh, greeting with the stored identity (the election's sessions were anonymous).
  for (const v of won.voters) v.session.client.close();
  const answered = won.voters.map((v) => v.member.link);
  const donorInfo = won.voters.find((v) => v.member === won.donor)!.session.info;
  const identity = storedIdentity(donorInfo.server);
  if (won.vcl === 0n || !identity) {
    log.info({ term: won.nodeId.term.toString() }, 'empty timeline: nothing to sync');
    return { vcl: 0n, identity: null, synced: [], term: won.nodeId.term };
  }
  const vcl = won.vcl;
  log.info({ vcl: formatLsn(vcl), donor: won.donor.name, epoch: won.donorEpoch.toString() }, "recovery: VCL is the most advanced voter's end of WAL");
  const history = await historyFor(won.donor, identity, opts);
  const leader = new Leader(won.nodeId, vcl, vcl, identity, links, history);
  for (const l of links) l.start(leader);
  const atVcl = (l: SafekeeperLink): boolean => l.connected && l.commitAcked >= vcl && l.good >= vcl;
  const quorum = quorumSize(links.length);
  try {
    // Wait for every safekeeper that answered, while the join makes progress.
    let progress = -1n;
    let progressAt = Date.now();
    while (!failure && !answered.every(atVcl)) {
      const now = links.reduce((sum, l) => sum + l.good + l.commitAcked, 0n);
      if (now !== progress) {
        progress = now;
        progressAt = Date.now();
      } else if (Date.now() - progressAt > opts.timeoutMs) {
        break;
      }
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
    if (failure) throw failure;
    const synced = links.filter(atVcl).map((l) => l.name);
    if (synced.length < quorum) {
      throw new NoQuorumError(`no quorum: only ${synced.length} of ${links.length} safekeepers reached the VCL ${formatLsn(vcl)}, ${quorum} needed`);
    }
    const missing = answered.filter((l) => !atVcl(l)).map((l) => l.name);
    if (missing.length) log.warn({ missing }, 'some safekeepers that answered the election did not reach the VCL');
    log.info({ vcl: formatLsn(vcl), synced }, 'safekeepers synced');
    return { vcl, identity, synced, term: won.nodeId.term };
  } finally {
    await Promise.all(links.map((l) => l.stop()));
  }
}
