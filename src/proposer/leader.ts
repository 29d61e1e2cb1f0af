// The term an election won, as the safekeeper links see it: the ballot, the
// VCL, the WAL in memory, the commit position, and the questions only the
// whole set of links can answer (where a peer can serve WAL, how far back
// WAL is still needed). It needs no primary: whatever fills the window
// (the primary stream, or nothing when lagging safekeepers are only brought
// up to the VCL) is someone else's job.
import { segmentFloor, type Lsn } from '../lsn.js';
import type { NodeId, ServerInfo } from '../protocol/types.js';
import { quorumCommitLsn, quorumSize } from './election.js';
import type { CatchUpTarget } from './catch-up.js';
import type { LeaderView } from './link-contract.js';
import type { SafekeeperLink } from './safekeeper.js';
import type { TimelineHistory } from './timeline-history.js';
import { WalWindow } from './wal-window.js';

/** The database system whose WAL the safekeepers hold, as a greeting announces it. */
export interface SystemIdentity {
  systemId: bigint;
  /** server_version_num. */
  pgVersion: number;
  /** PostgreSQL TimeLineID. */
  timeline: number;
  walSegSize: number;
  tenantId: Uint8Array;
  timelineId: Uint8Array;
}

/**
 * The anonymous greeting of election rounds: system id and PostgreSQL
 * timeline 0, so a safekeeper neither checks nor replaces its stored
 * identity and tells what it holds (docs/protocol.md §7.2).
 */
export function anonymousGreeting(tenantId: Uint8Array, timelineId: Uint8Array, nodeId: NodeId): ServerInfo {
  return greetingFor({ systemId: 0n, pgVersion: 0, timeline: 0, walSegSize: 0, tenantId, timelineId }, nodeId, 0n);
}

/** The identity a safekeeper has stored (from its SafeKeeperInfo); null when it has none yet. */
export function storedIdentity(server: ServerInfo): SystemIdentity | null {
  if (server.systemId === 0n || server.timeline === 0) return null;
  const { systemId, pgVersion, timeline, walSegSize, tenantId, timelineId } = server;
  return { systemId, pgVersion, timeline, walSegSize, tenantId, timelineId };
}

/** The greeting (ProposerGreeting payload) for a ballot and an end of WAL. */
export function greetingFor(system: SystemIdentity, nodeId: NodeId, walEnd: Lsn): ServerInfo {
  return {
    protocolVersion: 1,
    pgVersion: system.pgVersion,
    nodeId,
    systemId: system.systemId,
    timelineId: system.timelineId,
    walEnd,
    timeline: system.timeline,
    walSegSize: system.walSegSize,
    tenantId: system.tenantId,
  };
}

export class Leader implements LeaderView {
  readonly term: bigint;
  /** WAL of this term, from the VCL on. */
  readonly window: WalWindow;
  /** The quorum's commit position: WAL below it is on a quorum. */
  commit: Lsn;
  readonly pgTimeline: number;
  readonly walSegSize: number;
  private readonly quorum: number;
  /** Scratch for the acknowledged positions, so a commit update allocates no array of its own. */
  private readonly acked: Lsn[];

  constructor(
    readonly nodeId: NodeId,
    readonly vcl: Lsn,
    commit: Lsn,
    private readonly system: SystemIdentity,
    readonly links: readonly SafekeeperLink[],
    readonly history: TimelineHistory | null = null,
  ) {
    this.term = nodeId.term;
    this.window = new WalWindow(vcl);
    this.commit = commit;
    this.pgTimeline = system.timeline;
    this.walSegSize = system.walSegSize;
    this.quorum = quorumSize(links.length);
    this.acked = links.map(() => 0n);
  }

  serverInfo(): ServerInfo {
    return greetingFor(this.system, this.nodeId, this.window.end);
  }

  /** Where a safekeeper without any WAL starts: a segment boundary, so its segments are whole. */
  emptyStart(): Lsn {
    return segmentFloor(this.commit > this.vcl ? this.commit : this.vcl, this.walSegSize);
  }

  /** The oldest WAL some safekeeper may still need from its peers. */
  restartLsn(): Lsn {
    let min = this.commit;
    for (const l of this.links) if (l.good < min) min = l.good;
    return min;
  }

  /** The best peer to read WAL at `lsn` from, other than `exclude`. */
  peerFor(lsn: Lsn, exclude: CatchUpTarget): SafekeeperLink | null {
    let best: SafekeeperLink | null = null;
    for (const l of this.links) {
      if (l === exclude || !l.connected || l.low > lsn || l.good <= lsn) continue;
      if (!best || l.good > best.good) best = l;
    }
    return best;
  }

  /** Recompute the commit position from the flushes acknowledged in this term; true when it moved. */
  advanceCommit(): boolean {
    const acked = this.acked;
    for (let i = 0; i < acked.length; i++) acked[i] = this.links[i].ackedLsn;
    const c = quorumCommitLsn(acked, this.quorum);
    if (c <= this.commit) return false;
    this.commit = c;
    return true;
  }
}
