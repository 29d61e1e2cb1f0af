// The consensus state machine of one timeline (docs/protocol.md §5;
// durability rules §6). Pure and synchronous: decoded messages in, replies
// out, durability through the injected AcceptorStorage. No sockets, no
// files, no clocks, so the same code runs under the daemon and under the
// deterministic simulation in test/sim/.
import { formatLsn, isValidWalSegSize, type Lsn } from '../lsn.js';
import { MAX_WAL_PER_REQUEST, PROTOCOL_VERSION } from '../protocol/layout.js';
import { compareNodeId, copyNodeId, formatNodeId } from '../protocol/node-id.js';
import type {
  HotStandbyFeedback,
  NodeId,
  RequestVote,
  SafeKeeperInfo,
  SafeKeeperRequest,
  SafeKeeperResponse,
  ServerInfo,
} from '../protocol/types.js';
import { AcceptorError } from './errors.js';
import { copyServerInfo, copyState, emptyState, noHsFeedback } from './state.js';
import type { AcceptorStorage } from './storage.js';

export interface AcceptorOptions {
  /** The timeline's combined hot standby feedback, sent back in every response. */
  hsFeedback?: () => HotStandbyFeedback;
  /** Notable events that are not errors (a pg_version change). */
  log?: (message: string) => void;
}

export type AppendResult =
  | { kind: 'end' }
  | {
      kind: 'ack';
      response: SafeKeeperResponse;
      /** The host makes WAL durable through this LSN before sending `response`. */
      syncThrough: Lsn;
    };

/** Where a session is in the message flow. */
export type SessionPhase = 'new' | 'greeted' | 'voted' | 'refused' | 'ended' | 'failed';

const maxLsn = (a: Lsn, b: Lsn): Lsn => (a > b ? a : b);
const minLsn = (a: Lsn, b: Lsn): Lsn => (a < b ? a : b);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);
/** system_id 0 and timeline 0: a greeting that only asks for the state (docs/protocol.md §5.3). */
const isAnonymous = (info: ServerInfo): boolean => info.systemId === 0n && info.timeline === 0;

/** State and storage shared by all sessions of one timeline. */
class Core {
  state: SafeKeeperInfo;
  /** restart_lsn in the control file as last persisted (the "more than one segment" rule). */
  persistedRestartLsn: Lsn;

  constructor(
    readonly storage: AcceptorStorage,
    readonly hsFeedback: () => HotStandbyFeedback,
    readonly log: (message: string) => void,
  ) {
    const loaded = storage.loadControl();
    this.state = loaded ? copyState(loaded) : emptyState();
    this.persistedRestartLsn = this.state.restartLsn;
  }

  persist(): void {
    this.storage.persistControl(copyState(this.state));
    this.persistedRestartLsn = this.state.restartLsn;
  }
}

export class Acceptor {
  private readonly core: Core;

  constructor(storage: AcceptorStorage, opts: AcceptorOptions = {}) {
    this.core = new Core(storage, opts.hsFeedback ?? noHsFeedback, opts.log ?? (() => {}));
  }

  /** A copy of the current in-memory state (flush_lsn, epoch, the vote in server.node_id, ...). */
  get state(): SafeKeeperInfo {
    return copyState(this.core.state);
  }

  /** commit_lsn, without copying the state (read on every append). */
  get commitLsn(): Lsn {
    return this.core.state.commitLsn;
  }

  /** One per START_WAL_PUSH connection; several may coexist (an old and a new leader). */
  newSession(): AcceptorSession {
    return new AcceptorSession(this.core);
  }
}

export class AcceptorSession {
  private phaseNow: SessionPhase = 'new';
  /** The vote this session obtained: node id, and the vcl/epoch of its epoch switch. */
  private granted: RequestVote | null = null;
  /** End of the WAL this session has written; null before its first WAL request. */
  private position: Lsn | null = null;
  /** The PostgreSQL timeline this session greeted from (0: anonymously). */
  private pgTimeline = 0;

  constructor(private readonly core: Core) {}

  get phase(): SessionPhase {
    return this.phaseNow;
  }

  /**
   * ServerInfo → SafeKeeperInfo. `localWalEnd` is the end of valid WAL the
   * host found by scanning its segments (0n when there are none); it
   * becomes flush_lsn. The stored vote (server.node_id) is kept. An
   * anonymous greeting (system_id 0 and timeline 0) neither checks nor
   * replaces the stored identity. A greeting from a later PostgreSQL
   * timeline whose history holds the stored one moves the WAL onto it
   * (docs/protocol.md §5.3).
   */
  greet(info: ServerInfo, localWalEnd: Lsn): SafeKeeperInfo {
    this.expect('new', 'ServerInfo');
    const core = this.core;
    if (isAnonymous(info)) {
      this.guard(() => this.checkIds(info));
      core.state.flushLsn = localWalEnd;
      this.phaseNow = 'greeted';
      return copyState(core.state);
    }
    this.guard(() => this.checkServer(info));
    const switchLsn = this.guard(() => this.timelineMove(info.timeline));
    const old = core.state.server;
    if (old.pgVersion !== 0 && old.pgVersion !== info.pgVersion) {
      core.log(`pg_version changed from ${old.pgVersion} to ${info.pgVersion}`);
    }
    const identityChanged =
      old.systemId !== info.systemId ||
      old.walSegSize !== info.walSegSize ||
      old.pgVersion !== info.pgVersion ||
      old.timeline !== info.timeline ||
      old.protocolVersion !== info.protocolVersion ||
      hex(old.tenantId) !== hex(info.tenantId) ||
      hex(old.timelineId) !== hex(info.timelineId);
    core.state.flushLsn = localWalEnd;
    if (switchLsn !== null) {
      // WAL past the fork is not the new timeline's: gone (durably) before the state names the new timeline.
      core.storage.truncateWal(switchLsn);
      core.storage.beginTimeline(info.timeline, switchLsn);
      core.log(`moved from PostgreSQL timeline ${old.timeline} to ${info.timeline} at ${formatLsn(switchLsn)}`);
      const state = core.state;
      state.flushLsn = minLsn(state.flushLsn, switchLsn);
      state.commitLsn = minLsn(state.commitLsn, switchLsn);
      state.restartLsn = minLsn(state.restartLsn, switchLsn);
    }
    core.state.server = { ...copyServerInfo(info), nodeId: old.nodeId };
    this.pgTimeline = info.timeline;
    // system_id / wal_seg_size / ids must survive a crash, or a different database could write here next.
    if (identityChanged) core.persist();
    this.phaseNow = 'greeted';
    return copyState(core.state);
  }

  /**
   * The switch point when a greeting from PostgreSQL timeline `tli` moves
   * the stored WAL onto it; null when it stays. Throws when `tli` does not
   * descend from the stored timeline (an old primary, or no history yet).
   */
  private timelineMove(tli: number): Lsn | null {
    const storage = this.core.storage;
    const stored = this.core.state.server.timeline;
    if (stored === 0 || tli === 0 || tli === stored) return null;
    if (tli < stored) {
      const fork = storage.timelineHistory(stored)?.find((e) => e.timeline === tli);
      const at = fork ? `, which forked from timeline ${tli} at ${formatLsn(fork.switchpoint)}` : '';
      throw new AcceptorError(
        'pg-timeline-mismatch',
        `the proposer's primary is on PostgreSQL timeline ${tli}, but this timeline holds WAL of PostgreSQL timeline ${stored}${at}`,
      );
    }
    const history = storage.timelineHistory(tli);
    if (!history) {
      throw new AcceptorError('pg-timeline-mismatch', `no history stored for PostgreSQL timeline ${tli} (PUT_TIMELINE_HISTORY first); this timeline holds WAL of PostgreSQL timeline ${stored}`);
    }
    const fork = history.find((e) => e.timeline === stored);
    if (!fork) {
      throw new AcceptorError(
        'pg-timeline-mismatch',
        `the proposer's primary is on PostgreSQL timeline ${tli}, which does not descend from PostgreSQL timeline ${stored} that this timeline holds WAL of`,
      );
    }
    return fork.switchpoint;
  }

  /**
   * RequestVote → NodeId. Granted when the candidate is not below the stored
   * vote: the vote is made durable before this returns. Refused: the reply is
   * the stored vote and the session is over (the host sends the reply, then
   * an error).
   */
  vote(req: RequestVote): { granted: boolean; reply: NodeId } {
    this.expect('greeted', 'RequestVote');
    const core = this.core;
    const stored = core.state.server.nodeId;
    if (compareNodeId(req.nodeId, stored) < 0) {
      this.phaseNow = 'refused';
      return { granted: false, reply: copyNodeId(stored) };
    }
    // The proposer chose its VCL from the flush_lsn we reported: make that WAL durable first.
    core.storage.syncWal();
    if (compareNodeId(req.nodeId, stored) > 0) {
      core.state.server.nodeId = copyNodeId(req.nodeId);
      core.persist();
    }
    this.granted = { nodeId: copyNodeId(req.nodeId), vcl: req.vcl, epoch: req.epoch };
    this.phaseNow = 'voted';
    return { granted: true, reply: copyNodeId(req.nodeId) };
  }

  /**
   * One SafeKeeperRequest. begin_lsn 0 ends the stream. Otherwise the WAL is
   * written (not yet durable) and the reply returned; the host makes WAL
   * durable through `syncThrough` before sending it.
   */
  append(req: SafeKeeperRequest): AppendResult {
    this.expect('voted', 'SafeKeeperRequest');
    if (req.beginLsn === 0n) {
      this.phaseNow = 'ended';
      return { kind: 'end' };
    }
    return this.guard(() => this.appendWal(req));
  }

  private appendWal(req: SafeKeeperRequest): AppendResult {
    const core = this.core;
    const state = core.state;
    const vote = this.granted!;
    if (compareNodeId(vote.nodeId, state.server.nodeId) !== 0) {
      throw new AcceptorError(
        'wrong-sender',
        `this session's proposer ${formatNodeId(vote.nodeId)} is no longer the vote: ${formatNodeId(state.server.nodeId)} was elected since`,
      );
    }
    if (compareNodeId(req.senderId, vote.nodeId) !== 0) {
      throw new AcceptorError('wrong-sender', `sender_id ${formatNodeId(req.senderId)} is not the voted node_id ${formatNodeId(vote.nodeId)}`);
    }
    if (this.pgTimeline !== 0 && state.server.timeline !== this.pgTimeline) {
      // Another session moved the WAL to a new PostgreSQL timeline: this proposer's primary is the old one.
      throw new AcceptorError(
        'pg-timeline-mismatch',
        `this session's primary is on PostgreSQL timeline ${this.pgTimeline}, but the timeline moved to PostgreSQL timeline ${state.server.timeline}`,
      );
    }
    checkRequestShape(req);
    if (!isValidWalSegSize(state.server.walSegSize) && req.endLsn !== req.beginLsn) {
      throw new AcceptorError('bad-request', 'no WAL segment size is known for this timeline: greet with the server\'s identity (not anonymously) before sending WAL');
    }
    const { beginLsn: begin, endLsn: end } = req;
    const heartbeat = end === begin;

    if (this.position !== null && begin !== this.position) {
      throw new AcceptorError('wal-gap', `WAL request at ${formatLsn(begin)} does not continue this session's stream, which ended at ${formatLsn(this.position)}`);
    }
    if (this.position === null && !heartbeat) {
      if (begin > state.flushLsn && state.flushLsn !== 0n) {
        throw new AcceptorError('wal-gap', `WAL request at ${formatLsn(begin)} would leave a gap: local WAL ends at ${formatLsn(state.flushLsn)}`);
      }
      // No stale byte may stay after the new leader's data: before flush_lsn that is
      // WAL never committed; at or after it, a torn tail from a crash, which could
      // otherwise line up behind the new data and read as valid WAL again.
      core.storage.truncateWal(begin);
      if (begin < state.flushLsn) state.flushLsn = begin;
    }

    let epochSwitch = false;
    if (!heartbeat) {
      core.storage.writeWal(begin, req.wal);
      this.position = end;
      if (state.epoch < vote.epoch && end > maxLsn(state.flushLsn, vote.vcl)) {
        // The new epoch claims this WAL: it must be durable before the control file says so.
        core.storage.syncWal();
        state.epoch = vote.epoch;
        epochSwitch = true;
      }
      state.flushLsn = maxLsn(state.flushLsn, end);
    }
    // Both only move forward: a value once known to be on a quorum (or everywhere) stays so.
    state.commitLsn = maxLsn(state.commitLsn, req.commitLsn);
    state.restartLsn = maxLsn(state.restartLsn, req.restartLsn);
    const restartMoved = state.restartLsn - core.persistedRestartLsn > BigInt(state.server.walSegSize);
    if (epochSwitch || restartMoved) core.persist();

    // A heartbeat vouches only for WAL this acceptor has.
    const flushLsn = heartbeat ? minLsn(end, state.flushLsn) : end;
    return {
      kind: 'ack',
      response: { epoch: state.epoch, flushLsn, hsFeedback: core.hsFeedback() },
      syncThrough: flushLsn,
    };
  }

  private checkServer(info: ServerInfo): void {
    const stored = this.core.state.server;
    this.checkIds(info);
    if (stored.systemId !== 0n && stored.systemId !== info.systemId) {
      throw new AcceptorError('system-id-mismatch', `system_id mismatch: the timeline holds WAL of system ${stored.systemId}, the proposer is system ${info.systemId}`);
    }
    if (stored.walSegSize !== 0 && stored.walSegSize !== info.walSegSize) {
      throw new AcceptorError('wal-seg-size-mismatch', `wal_seg_size mismatch: the timeline uses ${stored.walSegSize} bytes, the proposer ${info.walSegSize}`);
    }
    if (!isValidWalSegSize(info.walSegSize)) {
      throw new AcceptorError('invalid-wal-seg-size', `invalid wal_seg_size ${info.walSegSize}: expected a power of two from 1 MiB to 1 GiB`);
    }
  }

  /** The checks an anonymous greeting gets too: protocol version, tenant and timeline ids. */
  private checkIds(info: ServerInfo): void {
    const stored = this.core.state.server;
    if (info.protocolVersion !== PROTOCOL_VERSION) {
      throw new AcceptorError('protocol-version', `unsupported protocol_version ${info.protocolVersion}: this safekeeper speaks version ${PROTOCOL_VERSION}`);
    }
    if (!isZero(stored.tenantId) && hex(stored.tenantId) !== hex(info.tenantId)) {
      throw new AcceptorError('tenant-mismatch', `tenant_id mismatch: the timeline belongs to tenant ${hex(stored.tenantId)}, the proposer sent ${hex(info.tenantId)}`);
    }
    if (!isZero(stored.timelineId) && hex(stored.timelineId) !== hex(info.timelineId)) {
      throw new AcceptorError('timeline-mismatch', `timeline_id mismatch: this is timeline ${hex(stored.timelineId)}, the proposer sent ${hex(info.timelineId)}`);
    }
  }

  private expect(phase: SessionPhase, what: string): void {
    if (this.phaseNow === phase) return;
    const why: Record<SessionPhase, string> = {
      new: 'before ServerInfo',
      greeted: 'before RequestVote',
      voted: 'after the vote',
      refused: 'after the vote was refused',
      ended: 'after the end of the stream',
      failed: 'after an error ended the session',
    };
    throw new AcceptorError('out-of-order', `unexpected ${what} ${why[this.phaseNow]}`);
  }

  /** Run a step; an AcceptorError out of it ends the session. */
  private guard<T>(step: () => T): T {
    try {
      return step();
    } catch (e) {
      if (e instanceof AcceptorError) this.phaseNow = 'failed';
      throw e;
    }
  }
}

function checkRequestShape(req: SafeKeeperRequest): void {
  if (req.endLsn < req.beginLsn) {
    throw new AcceptorError('bad-request', `end_lsn ${formatLsn(req.endLsn)} is before begin_lsn ${formatLsn(req.beginLsn)}`);
  }
  const count = req.endLsn - req.beginLsn;
  if (count > BigInt(MAX_WAL_PER_REQUEST)) {
    throw new AcceptorError('bad-request', `request carries ${count} bytes of WAL, more than the ${MAX_WAL_PER_REQUEST}-byte limit`);
  }
  if (BigInt(req.wal.length) !== count) {
    throw new AcceptorError('bad-request', `end_lsn - begin_lsn is ${count} but ${req.wal.length} WAL bytes follow`);
  }
}
