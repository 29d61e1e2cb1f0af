// The quorum proposer: gives the quorum guarantee to an unmodified
// PostgreSQL primary. It is a physical replication client of the primary
// (with its own slot) and the WAL proposer of a set of safekeepers:
//
//   1. identify the primary (system id, timeline, segment size) and make
//      sure its slot exists, so the primary keeps WAL the quorum lacks;
//   2. election, in two rounds (elect.ts): greet a majority, vote with
//      term = highest seen + 1 and a fresh uuid; once a majority granted,
//      greet them again — only state read after the vote is stable — and
//      take VCL = the highest (epoch, flush_lsn) among them (the donor);
//   3. every safekeeper joins with (VCL, epoch = term) and is fed from where
//      its WAL stops being the leader's: its flush_lsn, or the VCL when it
//      holds an older epoch's WAL beyond it (that WAL gets rewritten); a
//      lagging one is brought up to VCL from the donor's recovery stream;
//   4. stream WAL from the primary from VCL into a bounded window
//      (primary-stream.ts); feed each safekeeper from it at its own pace,
//      pipelined (safekeeper.ts); one that falls out of the window catches
//      up from a peer (catch-up.ts);
//   5. commit position = the quorum-th highest flush acknowledged in our
//      epoch; the primary is told write = flush = apply = commit position in
//      a status update every time it moves, so synchronous replication
//      naming this proposer releases a commit only once its WAL is on a
//      quorum. The safekeepers' hot standby feedback goes to the primary.
//
// A fresh timeline (every safekeeper empty) starts at the beginning of the
// segment holding the primary's current position (or at startLsn), so
// stored segments are whole from their first page. All WAL comes from the
// one primary and its one PostgreSQL timeline, so safekeepers' WAL are
// prefixes of one history. The election greets anonymously; before the
// voters join, their stored identity is checked against the primary's
// (timeline-join.ts): a primary on a newer PostgreSQL timeline continues the
// WAL from its switch point, an old primary is refused. When the primary
// itself switches timelines, the term ends (TimelineSwitchError) and the
// command runs a new election.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { formatLsn, segmentFloor, type Lsn } from '../lsn.js';
import { backoffMs, InterruptibleSleep } from './backoff.js';
import type { ConnTarget } from './connstr.js';
import { elect, type ElectionWon } from './elect.js';
import { LostLeadershipError, ProposerFatalError, Stopped, TimelineSwitchError } from './errors.js';
import { anonymousGreeting, Leader, type SystemIdentity } from './leader.js';
import { planJoin, refuseStale, type JoinPlan } from './timeline-join.js';
import type { SafekeeperAccess } from './catch-up.js';
import { PrimaryStream } from './primary-stream.js';
import type { LinkEvents } from './link-contract.js';
import type { PrimaryConnection } from './primary.js';
import { SafekeeperLink, type SafekeeperAddress } from './safekeeper.js';
import type { TlsClientSettings } from './tls-client.js';

export { LostLeadershipError, ProposerFatalError, TimelineSwitchError } from './errors.js';
export type { SafekeeperAddress } from './safekeeper.js';

export interface QuorumProposerOptions {
  /** The primary, as a resolved connection string. */
  primary: ConnTarget;
  safekeepers: SafekeeperAddress[];
  /** 32 hex digits each. */
  tenantId: string;
  timelineId: string;
  /** Physical replication slot on the primary (created if missing). */
  slot: string;
  /** application_name towards the primary: the name synchronous_standby_names uses. */
  applicationName: string;
  /** Where a fresh timeline starts (default: the start of the segment holding the primary's position). */
  startLsn?: Lsn;
  /** WAL kept in memory (default 64 MiB). */
  maxBufferBytes?: number;
  /** WAL bytes in flight to one safekeeper (default 8 MiB). */
  windowBytes?: number;
  /** Small requests in flight to one safekeeper while it is fed from memory (default 1): WAL arriving meanwhile is batched into the next. */
  pipelineDepth?: number;
  /** Standby status update interval when nothing moves (default 1 s). */
  statusIntervalMs?: number;
  /** After a majority answered, wait this long for the rest (default 300 ms). */
  electionGraceMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Password (or token) for the safekeepers, if they ask for one. */
  safekeeperPassword?: string;
  /** TLS towards the safekeepers (libpq's sslmode etc.); none when absent. */
  safekeeperTls?: TlsClientSettings;
  log: Logger;
}

export interface SafekeeperStatus {
  name: string;
  state: string;
  flushLsn: string;
  ackedLsn: string;
  nextLsn: string;
  epoch: string;
  catchingUp: boolean;
  inflightBytes: number;
  appends: number;
  bytes: number;
  heartbeats: number;
  sessions: number;
  catchups: number;
}

export interface ProposerStatus {
  term: string;
  vcl: string | null;
  commitLsn: string;
  windowStart: string | null;
  windowEnd: string | null;
  windowBytes: number;
  primary: 'streaming' | 'down';
  safekeepers: SafekeeperStatus[];
  /** XLogData messages received from the primary. */
  primaryMessages: number;
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export class QuorumProposer implements LinkEvents {
  readonly links: SafekeeperLink[];
  private readonly log: Logger;
  private readonly opts: QuorumProposerOptions;
  private readonly uuid: Uint8Array;
  /** How to reach the safekeepers' replication ports. */
  private readonly access: SafekeeperAccess;
  private readonly primary: PrimaryStream;
  /** The term being run; null until an election is won. */
  private leader: Leader | null = null;
  /** The highest term seen or voted with (the status shows it during elections). */
  private term = 0n;
  private stopping = false;
  private readonly retrySleep = new InterruptibleSleep();
  private timers: NodeJS.Timeout[] = [];
  private finish: { resolve(): void; reject(e: Error): void } | null = null;
  private readonly done: Promise<void>;
  private termStarted = false;
  private statusPending = false;

  constructor(opts: QuorumProposerOptions) {
    if (opts.safekeepers.length === 0) throw new ProposerFatalError('no safekeepers given');
    this.opts = opts;
    this.log = opts.log;
    const backoff = (failures: number): number => backoffMs(failures, opts.backoffMinMs ?? 100, opts.backoffMaxMs ?? 1000);
    const settings = {
      log: opts.log,
      tenantId: opts.tenantId.toLowerCase(),
      timelineId: opts.timelineId.toLowerCase(),
      password: opts.safekeeperPassword,
      tls: opts.safekeeperTls,
      windowBytes: opts.windowBytes ?? 8 << 20,
      pipelineDepth: opts.pipelineDepth ?? 1,
      backoffMs: backoff,
    };
    this.access = settings;
    this.links = opts.safekeepers.map((a) => new SafekeeperLink(a, settings, this));
    this.primary = new PrimaryStream({
      target: opts.primary,
      applicationName: opts.applicationName,
      slot: opts.slot,
      maxBufferBytes: opts.maxBufferBytes ?? 64 << 20,
      log: opts.log,
      backoffMs: backoff,
      fatal: (err) => this.fatal(err),
    });
    this.uuid = hexBytes(randomUUID().replace(/-/g, ''));
    this.done = new Promise<void>((resolve, reject) => {
      this.finish = { resolve, reject };
    });
    this.done.catch(() => {});
  }

  // ---- LinkEvents ----

  joined(): void {
    for (const l of this.links) l.peerAvailable();
  }

  acked(): void {
    const leader = this.leader!;
    if (!leader.advanceCommit()) return;
    if (!this.termStarted) {
      this.termStarted = true;
      this.log.info({ term: leader.term.toString(), commitLsn: formatLsn(leader.commit) }, 'a quorum holds WAL of this term: commits flow');
    }
    // One status update for all acknowledgements read in this turn of the event loop.
    if (!this.statusPending) {
      this.statusPending = true;
      setImmediate(this.sendStatus);
    }
    for (const l of this.links) l.commitMoved();
    if (this.primary.paused) this.primary.checkWindow();
  }

  feedbackChanged(): void {
    this.primary.sendFeedback();
  }

  fatal(err: Error): void {
    if (this.stopping) return;
    if (err instanceof TimelineSwitchError) this.log.info({ timeline: err.timeline, reason: err.message }, 'the primary switched PostgreSQL timelines: ending this term');
    else this.log.error({ err: err.message }, err instanceof LostLeadershipError ? 'lost leadership; stopping' : 'fatal error; stopping');
    void this.shutdown().then(() => this.finish?.reject(err));
  }

  private readonly sendStatus = (): void => {
    this.statusPending = false;
    this.primary.sendStatus();
  };

  // ---- running ----

  /** Run until stop() (resolves) or a fatal condition (rejects). */
  run(): Promise<void> {
    void this.main().catch((err) => {
      if (err instanceof Stopped) return;
      this.fatal(err instanceof Error ? err : new Error(String(err)));
    });
    return this.done;
  }

  /** Stop cleanly: end every stream; run() resolves. */
  async stop(): Promise<void> {
    if (this.stopping) return this.done.catch(() => {});
    await this.shutdown();
    this.finish?.resolve();
  }

  private async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.retrySleep.wake();
    this.primary.stop();
    await Promise.all(this.links.map((l) => l.stop()));
  }

  status(): ProposerStatus {
    const leader = this.leader;
    return {
      term: this.term.toString(),
      vcl: leader ? formatLsn(leader.vcl) : null,
      commitLsn: formatLsn(leader?.commit ?? 0n),
      windowStart: leader ? formatLsn(leader.window.start) : null,
      windowEnd: leader ? formatLsn(leader.window.end) : null,
      windowBytes: leader?.window.bytes ?? 0,
      primary: this.primary.streaming ? 'streaming' : 'down',
      safekeepers: this.links.map((l) => ({
        name: l.name,
        state: l.state,
        flushLsn: formatLsn(l.flushLsn),
        ackedLsn: formatLsn(l.ackedLsn),
        nextLsn: formatLsn(l.next),
        epoch: l.epoch.toString(),
        catchingUp: l.catchingUp,
        inflightBytes: l.inflightBytes,
        ...l.stats,
      })),
      primaryMessages: this.primary.messages,
    };
  }

  private async main(): Promise<void> {
    const conn = await this.primary.connect();
    const system = this.system();
    let won: ElectionWon<SafekeeperLink>;
    let plan: JoinPlan;
    try {
      won = await this.electLeader(system);
      // Every voter joins afresh with the primary's identity (the election's greetings were anonymous).
      for (const v of won.voters) v.session.client.close();
      plan = await planJoin({ won, primary: this.primary.identity!, conn, access: this.access });
    } catch (err) {
      conn.close();
      throw err;
    }
    this.beginTerm(won, plan, system, conn);
    const status = setInterval(() => this.primary.sendStatus(), this.opts.statusIntervalMs ?? 1000);
    status.unref();
    this.timers.push(status as unknown as NodeJS.Timeout);
    if (this.log.isLevelEnabled('debug')) {
      const dump = setInterval(() => this.log.debug({ status: this.status() }, 'status'), 2000);
      dump.unref();
      this.timers.push(dump as unknown as NodeJS.Timeout);
    }
    this.scheduleKick(1000);
  }

  /** What the primary announces, as the safekeepers are greeted with it. */
  private system(): SystemIdentity {
    const id = this.primary.identity!;
    return {
      systemId: id.systemId,
      pgVersion: id.pgVersion,
      timeline: id.timeline,
      walSegSize: id.walSegSize,
      tenantId: hexBytes(this.opts.tenantId),
      timelineId: hexBytes(this.opts.timelineId),
    };
  }

  /** Elections until one is won; LostLeadershipError when another proposer holds a higher ballot. */
  private async electLeader(system: SystemIdentity): Promise<ElectionWon<SafekeeperLink>> {
    let waitingLogged = '';
    for (let attempt = 1; ; attempt++) {
      if (this.stopping) throw new Stopped();
      const outcome = await elect({
        members: this.links,
        uuid: this.uuid,
        highestSeen: this.term,
        greeting: (nodeId) => anonymousGreeting(system.tenantId, system.timelineId, nodeId),
        graceMs: this.opts.electionGraceMs ?? 300,
        log: this.log,
        admit: (greeted) => refuseStale(greeted, this.primary.identity!, this.access),
      });
      this.term = outcome.highestSeen;
      if (outcome.won) return outcome;
      if (outcome.reason !== waitingLogged) {
        waitingLogged = outcome.reason;
        this.log.warn({ reason: outcome.reason }, 'election did not succeed; retrying');
      }
      await this.retrySleep.sleep(backoffMs(attempt, this.opts.backoffMinMs ?? 100, this.opts.backoffMaxMs ?? 1000));
    }
  }

  /**
   * Fix where this term's WAL starts (the VCL, or for a fresh timeline the
   * segment holding the primary's position), then start every link and the
   * primary stream.
   */
  private beginTerm(won: ElectionWon<SafekeeperLink>, plan: JoinPlan, system: SystemIdentity, conn: PrimaryConnection): void {
    const id = this.primary.identity!;
    let { vcl, commit } = plan;
    if (vcl === 0n) {
      vcl = this.opts.startLsn ?? segmentFloor(id.xlogPos, id.walSegSize);
      this.log.info({ startLsn: formatLsn(vcl) }, 'fresh timeline: every voter is empty; WAL starts here');
      commit = 0n;
    } else {
      if (this.opts.startLsn !== undefined) this.log.warn({ startLsn: formatLsn(this.opts.startLsn) }, '--start-lsn ignored: the timeline already has WAL');
      this.log.info(
        { vcl: formatLsn(vcl), donor: won.donor.name, epoch: won.donorEpoch.toString(), commitLsn: formatLsn(commit) },
        'recovery: VCL is the most advanced voter\'s end of WAL',
      );
    }
    if (vcl < won.vcl) this.log.info({ vcl: formatLsn(won.vcl), startLsn: formatLsn(vcl), timeline: system.timeline }, 'the primary forked a new PostgreSQL timeline: the term starts at its switch point');
    const leader = new Leader(won.nodeId, vcl, commit, system, this.links, plan.history);
    this.leader = leader;
    for (const l of this.links) l.start(leader);
    this.primary.follow(leader, conn);
  }

  /**
   * Until a quorum acknowledges WAL of this term, only the old commit
   * position is known, and commits the primary made up to the VCL wait: ask
   * an idle primary for a record now and then.
   */
  private scheduleKick(ms: number): void {
    const t = setTimeout(() => {
      if (this.stopping || this.termStarted) return;
      const leader = this.leader!;
      if (leader.window.end === leader.vcl && this.primary.streaming) this.primary.askForWalRecord();
      this.scheduleKick(5000);
    }, ms);
    t.unref();
    this.timers.push(t);
  }
}
