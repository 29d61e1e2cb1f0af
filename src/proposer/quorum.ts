// The quorum proposer: gives the quorum guarantee to an unmodified
// PostgreSQL primary. It is a physical replication client of the primary
// (with its own slot) and the WAL proposer of a set of safekeepers:
//
//   1. identify the primary (system id, timeline, segment size) and make
//      sure its slot exists, so the primary keeps WAL the quorum lacks;
//   2. election, in two rounds (election.ts): greet a majority, vote with
//      term = highest seen + 1 and a fresh uuid; once a majority granted,
//      greet them again — only state read after the vote is stable — and
//      take VCL = the highest (epoch, flush_lsn) among them (the donor);
//   3. every safekeeper joins with (VCL, epoch = term) and is fed from where
//      its WAL stops being the leader's: its flush_lsn, or the VCL when it
//      holds an older epoch's WAL beyond it (that WAL gets rewritten); a
//      lagging one is brought up to VCL from the donor's recovery stream;
//   4. stream WAL from the primary from VCL into a bounded window; feed each
//      safekeeper from it at its own pace, pipelined; one that falls out of
//      the window catches up from a peer;
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
// prefixes of one history; a timeline switch on the primary is refused.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { formatLsn, segmentFloor, type Lsn } from '../lsn.js';
import { formatNodeId } from '../protocol/node-id.js';
import { U64_MAX } from '../protocol/layout.js';
import type { HotStandbyFeedback, NodeId, SafeKeeperInfo, ServerInfo } from '../protocol/types.js';
import { PgServerError, type ProposerClient } from './client.js';
import { describeTarget, type ConnTarget } from './connstr.js';
import { nextTerm, pickDonor, quorumCommitLsn, quorumSize } from './election.js';
import { PrimaryConnection, runSql, type PrimaryIdentity } from './primary.js';
import { LostLeadershipError, SafekeeperLink, type LinkHost, type SafekeeperAddress } from './safekeeper.js';
import { WalWindow } from './wal-window.js';

export { LostLeadershipError, type SafekeeperAddress } from './safekeeper.js';

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
  log: Logger;
}

/** A condition the proposer cannot recover from by retrying. */
export class ProposerFatalError extends Error {
  override readonly name = 'ProposerFatalError';
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

class Stopped extends Error {}

interface Attempt<T> {
  link: SafekeeperLink;
  promise: Promise<T>;
}

interface Gathered<T> {
  ok: { link: SafekeeperLink; value: T }[];
  failed: { link: SafekeeperLink; err: unknown }[];
}

/**
 * Wait for `attempts` until all have settled, or a quorum succeeded and
 * `graceMs` passed since, or `timeoutMs`. Successes that come later go to
 * `late` (to be closed).
 */
function gather<T>(attempts: Attempt<T>[], quorum: number, graceMs: number, timeoutMs: number, late: (v: T) => void): Promise<Gathered<T>> {
  return new Promise((resolve) => {
    const out: Gathered<T> = { ok: [], failed: [] };
    let settled = 0;
    let done = false;
    let grace: NodeJS.Timeout | null = null;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (grace) clearTimeout(grace);
      resolve(out);
    };
    const timer = setTimeout(finish, timeoutMs);
    for (const a of attempts) {
      a.promise.then(
        (value) => {
          if (done) return late(value);
          out.ok.push({ link: a.link, value });
          settled++;
          if (settled === attempts.length) finish();
          else if (out.ok.length >= quorum && !grace) grace = setTimeout(finish, graceMs);
        },
        (err) => {
          if (done) return;
          out.failed.push({ link: a.link, err });
          settled++;
          if (settled === attempts.length) finish();
        },
      );
    }
    if (attempts.length === 0) finish();
  });
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export class QuorumProposer implements LinkHost {
  readonly log: Logger;
  readonly tenantId: string;
  readonly timelineId: string;
  readonly password: string | undefined;
  readonly windowBytes: number;
  readonly pipelineDepth: number;
  readonly links: SafekeeperLink[];
  readonly quorum: number;
  nodeId: NodeId;
  term = 0n;
  window: WalWindow = new WalWindow(0n);
  commit: Lsn = 0n;
  stopping = false;
  identity: PrimaryIdentity | null = null;
  private vclLsn: Lsn | null = null;
  private vclWaiters: ((v: Lsn) => void)[] = [];
  private highestSeen = 0n;
  private primary: PrimaryConnection | null = null;
  private primaryPaused = false;
  private primaryMessages = 0;
  private statusPending = false;
  private bufferFullLogged = false;
  private readonly maxBuffer: number;
  private readonly opts: QuorumProposerOptions;
  private readonly uuid: Uint8Array;
  private timers: NodeJS.Timeout[] = [];
  private finish: { resolve(): void; reject(e: Error): void } | null = null;
  private readonly done: Promise<void>;
  private primaryProblem = '';
  private termStarted = false;
  private streamedOnce = false;
  private primarySleep: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  private pumpQueued = false;

  constructor(opts: QuorumProposerOptions) {
    if (opts.safekeepers.length === 0) throw new ProposerFatalError('no safekeepers given');
    this.opts = opts;
    this.log = opts.log;
    this.tenantId = opts.tenantId.toLowerCase();
    this.timelineId = opts.timelineId.toLowerCase();
    this.password = opts.safekeeperPassword;
    this.windowBytes = opts.windowBytes ?? 8 << 20;
    this.pipelineDepth = opts.pipelineDepth ?? 1;
    this.maxBuffer = opts.maxBufferBytes ?? 64 << 20;
    this.links = opts.safekeepers.map((a) => new SafekeeperLink(a, this));
    this.quorum = quorumSize(this.links.length);
    this.uuid = hexBytes(randomUUID().replace(/-/g, ''));
    this.nodeId = { term: 0n, uuid: this.uuid };
    this.done = new Promise<void>((resolve, reject) => {
      this.finish = { resolve, reject };
    });
    this.done.catch(() => {});
  }

  // ---- LinkHost ----

  get pgTimeline(): number {
    return this.identity?.timeline ?? 1;
  }

  get walSegSize(): number {
    return this.identity?.walSegSize ?? 16 << 20;
  }

  serverInfo(): ServerInfo {
    const id = this.identity!;
    return {
      protocolVersion: 1,
      pgVersion: id.pgVersion,
      nodeId: this.nodeId,
      systemId: id.systemId,
      timelineId: hexBytes(this.timelineId),
      walEnd: this.vclLsn === null ? id.xlogPos : this.window.end,
      timeline: id.timeline,
      walSegSize: id.walSegSize,
      tenantId: hexBytes(this.tenantId),
    };
  }

  vcl(): Promise<Lsn> {
    if (this.vclLsn !== null) return Promise.resolve(this.vclLsn);
    return new Promise((resolve) => this.vclWaiters.push(resolve));
  }

  emptyStart(): Lsn {
    const vcl = this.vclLsn ?? 0n;
    return segmentFloor(this.commit > vcl ? this.commit : vcl, this.walSegSize);
  }

  restartLsn(): Lsn {
    let min = this.commit;
    for (const l of this.links) if (l.good < min) min = l.good;
    return min;
  }

  backoffMs(failures: number): number {
    const lo = this.opts.backoffMinMs ?? 100;
    const hi = this.opts.backoffMaxMs ?? 1000;
    const base = Math.min(hi, lo * 2 ** Math.min(20, Math.max(0, failures - 1)));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  peerFor(lsn: Lsn, exclude: SafekeeperLink): SafekeeperLink | null {
    let best: SafekeeperLink | null = null;
    for (const l of this.links) {
      if (l === exclude || !l.connected || l.low > lsn || l.good <= lsn) continue;
      if (!best || l.good > best.good) best = l;
    }
    return best;
  }

  joined(_link: SafekeeperLink): void {
    for (const l of this.links) l.peerAvailable();
  }

  acked(_link: SafekeeperLink): void {
    const c = quorumCommitLsn(
      this.links.map((l) => l.ackedLsn),
      this.quorum,
    );
    if (c <= this.commit) return;
    this.commit = c;
    if (!this.termStarted) {
      this.termStarted = true;
      this.log.info({ term: this.term.toString(), commitLsn: formatLsn(c) }, 'a quorum holds WAL of this term: commits flow');
    }
    // One status update for all acknowledgements read in this turn of the event loop.
    if (!this.statusPending) {
      this.statusPending = true;
      setImmediate(() => {
        this.statusPending = false;
        this.sendStatus();
      });
    }
    for (const l of this.links) l.commitMoved();
    if (this.primaryPaused) this.checkWindow();
  }

  feedback(): void {
    const hs: HotStandbyFeedback = { ts: 0n, xmin: U64_MAX, catalogXmin: U64_MAX };
    for (const l of this.links) {
      if (!l.hs) continue;
      if (l.hs.xmin < hs.xmin) hs.xmin = l.hs.xmin;
      if (l.hs.catalogXmin < hs.catalogXmin) hs.catalogXmin = l.hs.catalogXmin;
    }
    this.primary?.sendFeedback(hs);
  }

  fatal(err: Error): void {
    if (this.stopping) return;
    this.log.error({ err: err.message }, err instanceof LostLeadershipError ? 'lost leadership; stopping' : 'fatal error; stopping');
    void this.shutdown().then(() => this.finish?.reject(err));
  }

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
    if (this.primarySleep) {
      clearTimeout(this.primarySleep.timer);
      this.primarySleep.wake();
    }
    // Tell the primary where we got to, then leave.
    this.sendStatus();
    this.primary?.close();
    this.primary = null;
    await Promise.all(this.links.map((l) => l.stop()));
  }

  status(): ProposerStatus {
    return {
      term: this.term.toString(),
      vcl: this.vclLsn === null ? null : formatLsn(this.vclLsn),
      commitLsn: formatLsn(this.commit),
      windowStart: this.vclLsn === null ? null : formatLsn(this.window.start),
      windowEnd: this.vclLsn === null ? null : formatLsn(this.window.end),
      windowBytes: this.window.bytes,
      primary: this.primary ? 'streaming' : 'down',
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
      primaryMessages: this.primaryMessages,
    };
  }

  private async main(): Promise<void> {
    const conn = await this.connectPrimary();
    await this.elect();
    const status = setInterval(() => this.sendStatus(), this.opts.statusIntervalMs ?? 1000);
    status.unref();
    this.timers.push(status as unknown as NodeJS.Timeout);
    if (this.log.isLevelEnabled('debug')) {
      const dump = setInterval(() => this.log.debug({ status: this.status() }, 'status'), 2000);
      dump.unref();
      this.timers.push(dump as unknown as NodeJS.Timeout);
    }
    this.scheduleKick(1000);
    void this.primaryLoop(conn);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.primarySleep = null;
        resolve();
      }, ms);
      this.primarySleep = { timer, wake: resolve };
    });
  }

  private primaryUnavailable(err: unknown): void {
    const msg = (err as Error)?.message ?? String(err);
    if (this.primaryProblem !== '') {
      if (msg !== this.primaryProblem) this.log.debug({ primary: describeTarget(this.opts.primary), err: msg }, 'primary still unavailable');
      this.primaryProblem = msg;
      return;
    }
    this.primaryProblem = msg;
    this.log.warn({ primary: describeTarget(this.opts.primary), err: msg }, 'primary unavailable; retrying with backoff');
  }

  /** Connect to the primary, identify it, make sure the slot exists; retried until it works. */
  private async connectPrimary(): Promise<PrimaryConnection> {
    for (let failures = 1; ; failures++) {
      if (this.stopping) throw new Stopped();
      let conn: PrimaryConnection | null = null;
      try {
        conn = await PrimaryConnection.connect(this.opts.primary, this.opts.applicationName);
        const id = await conn.identify();
        const known = this.identity;
        if (known && id.systemId !== known.systemId) {
          throw new ProposerFatalError(`the primary is now a different database system (${id.systemId}, was ${known.systemId})`);
        }
        if (known && id.timeline !== known.timeline) {
          throw new ProposerFatalError(`the primary moved from PostgreSQL timeline ${known.timeline} to ${id.timeline} (a promotion?): timeline switches are not supported`);
        }
        this.identity = id;
        if (await conn.ensureSlot(this.opts.slot)) this.log.info({ slot: this.opts.slot }, 'created the physical replication slot on the primary');
        if (!known) {
          this.log.info(
            { primary: describeTarget(this.opts.primary), systemId: id.systemId.toString(), timeline: id.timeline, xlogPos: formatLsn(id.xlogPos), walSegSize: id.walSegSize },
            'connected to the primary',
          );
        }
        return conn;
      } catch (err) {
        conn?.close();
        if (err instanceof ProposerFatalError) throw err;
        if (this.stopping) throw new Stopped();
        this.primaryUnavailable(err);
        await this.sleep(this.backoffMs(failures));
      }
    }
  }

  // ---- election ----

  private async elect(): Promise<void> {
    let waitingLogged = '';
    for (let attempt = 1; ; attempt++) {
      if (this.stopping) throw new Stopped();
      const outcome = await this.tryElect();
      if (outcome === true) return;
      if (outcome !== waitingLogged) {
        waitingLogged = outcome;
        this.log.warn({ reason: outcome }, 'election did not succeed; retrying');
      }
      await this.sleep(this.backoffMs(attempt));
    }
  }

  /** One election; true when elected, else why not. */
  private async tryElect(): Promise<true | string> {
    const grace = this.opts.electionGraceMs ?? 300;
    const closeLate = (s: { client: ProposerClient }): void => s.client.close();
    const round1 = await gather(
      this.links.map((link) => ({ link, promise: link.greet() })),
      this.quorum,
      grace,
      10_000,
      closeLate,
    );
    const closeAll = (): void => {
      for (const s of round1.ok) s.value.client.close();
    };
    for (const f of round1.failed) f.link.problem(f.err, 'cannot greet');
    if (round1.ok.length < this.quorum) {
      closeAll();
      return `${round1.ok.length} of ${this.links.length} safekeepers answered, ${this.quorum} needed`;
    }
    for (const s of round1.ok) {
      const t = s.value.info.server.nodeId.term;
      if (t > this.highestSeen) this.highestSeen = t;
    }
    this.term = nextTerm(this.highestSeen);
    this.highestSeen = this.term;
    this.nodeId = { term: this.term, uuid: this.uuid };
    const votes = await Promise.allSettled(round1.ok.map((s) => s.value.client.vote({ nodeId: this.nodeId, vcl: 0n, epoch: 0n })));
    const granted: { link: SafekeeperLink; client: ProposerClient }[] = [];
    for (let i = 0; i < votes.length; i++) {
      const v = votes[i];
      const s = round1.ok[i];
      if (v.status === 'rejected') {
        s.link.problem(v.reason, 'vote failed');
        s.value.client.close();
        continue;
      }
      if (v.value.term !== this.term || formatNodeId(v.value) !== formatNodeId(this.nodeId)) {
        closeAll();
        throw new LostLeadershipError(
          `safekeeper ${s.link.name} refused the vote for term ${this.term}: it has voted for ${formatNodeId(v.value)}; another proposer is running for this timeline`,
        );
      }
      granted.push({ link: s.link, client: s.value.client });
    }
    if (granted.length < this.quorum) {
      for (const g of granted) g.client.close();
      return `${granted.length} of ${this.links.length} safekeepers granted the vote, ${this.quorum} needed`;
    }
    this.log.info({ term: this.term.toString(), node: formatNodeId(this.nodeId), voters: granted.map((g) => g.link.name) }, 'won the vote');

    // Round 2: greet the voters again on the same connections; only this state is stable.
    const round2 = await gather(
      granted.map((g) => ({
        link: g.link,
        promise: (async () => {
          await g.client.endStream();
          await g.client.startWalPush();
          const info = await g.client.greet(this.serverInfo());
          return { client: g.client, info };
        })().catch((err) => {
          g.client.close();
          throw err;
        }),
      })),
      this.quorum,
      grace,
      10_000,
      closeLate,
    );
    for (const f of round2.failed) f.link.problem(f.err, 'cannot greet after the vote');
    if (round2.ok.length < this.quorum) {
      for (const s of round2.ok) s.value.client.close();
      return `${round2.ok.length} of ${this.links.length} voters answered after the vote, ${this.quorum} needed`;
    }
    for (const s of round2.ok) {
      const vote = s.value.info.server.nodeId;
      if (formatNodeId(vote) !== formatNodeId(this.nodeId)) {
        for (const x of round2.ok) x.value.client.close();
        throw new LostLeadershipError(`safekeeper ${s.link.name} has voted for ${formatNodeId(vote)} since: another proposer is running for this timeline`);
      }
    }
    const infos: SafeKeeperInfo[] = round2.ok.map((s) => s.value.info);
    const d = pickDonor(infos);
    const donor = round2.ok[d].link;
    let vcl = infos[d].flushLsn;
    const id = this.identity!;
    let commit = 0n;
    for (const i of infos) if (i.commitLsn > commit) commit = i.commitLsn;
    if (vcl === 0n) {
      vcl = this.opts.startLsn ?? segmentFloor(id.xlogPos, id.walSegSize);
      this.log.info({ startLsn: formatLsn(vcl) }, 'fresh timeline: every voter is empty; WAL starts here');
      commit = 0n;
    } else {
      if (this.opts.startLsn !== undefined) this.log.warn({ startLsn: formatLsn(this.opts.startLsn) }, '--start-lsn ignored: the timeline already has WAL');
      this.log.info(
        { vcl: formatLsn(vcl), donor: donor.name, epoch: infos[d].epoch.toString(), commitLsn: formatLsn(commit) },
        'recovery: VCL is the most advanced voter\'s end of WAL',
      );
    }
    if (commit > vcl) commit = vcl;
    this.commit = commit;
    this.vclLsn = vcl;
    this.window = new WalWindow(vcl);
    const waiters = this.vclWaiters;
    this.vclWaiters = [];
    for (const w of waiters) w(vcl);
    for (const s of round2.ok) {
      s.link.voter = true;
      s.link.start(s.value);
    }
    for (const l of this.links) l.start();
    return true;
  }

  // ---- the primary stream ----

  private async primaryLoop(conn: PrimaryConnection | null): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        if (!conn) conn = await this.connectPrimary();
        await this.streamFrom(conn);
        failures = 0;
      } catch (err) {
        if (err instanceof Stopped || this.stopping) return;
        if (err instanceof ProposerFatalError) return this.fatal(err);
        this.primaryUnavailable(err);
        failures++;
      } finally {
        conn?.close();
        conn = null;
        this.primary = null;
      }
      if (this.stopping) return;
      await this.sleep(this.backoffMs(Math.max(1, failures)));
    }
  }

  /** Stream from the end of the window until the stream breaks. */
  private streamFrom(conn: PrimaryConnection): Promise<void> {
    const id = this.identity!;
    const from = this.window.end;
    return new Promise<void>((resolve, reject) => {
      // WAL may arrive in the same read as the CopyBothResponse: be ready for it first.
      this.primary = conn;
      conn
        .stream(this.opts.slot, from, id.timeline, {
          wal: (lsn, data) => this.onWal(conn, lsn, data),
          replyRequested: () => conn.sendStatus(this.commit),
          end: (outcome) => {
            if (outcome.kind === 'error') reject(this.classifyStreamError(outcome.error, from));
            else reject(new Error(outcome.kind === 'closed' ? outcome.error.message : 'the primary ended the replication stream'));
          },
        })
        .then(() => {
          this.primaryPaused = false;
          if (this.primaryProblem !== '' || !this.streamedOnce) this.log.info({ from: formatLsn(from), slot: this.opts.slot }, 'streaming WAL from the primary');
          this.primaryProblem = '';
          this.streamedOnce = true;
          conn.sendStatus(this.commit);
          this.feedback();
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
    if (this.primary !== conn) return;
    this.primaryMessages++;
    try {
      this.window.push(lsn, data);
    } catch (err) {
      this.primaryUnavailable(err);
      conn.close();
      return;
    }
    // Pump once after every message of this read is in the window: what arrived together leaves together.
    if (!this.pumpQueued) {
      this.pumpQueued = true;
      queueMicrotask(() => {
        this.pumpQueued = false;
        for (const l of this.links) l.pump();
        this.checkWindow();
      });
    }
  }

  /** Keep memory bounded: drop WAL the quorum has, pause the primary while the window is full of WAL it lacks. */
  private checkWindow(): void {
    const w = this.window;
    const low = Math.floor(this.maxBuffer * 0.75);
    if (w.bytes > this.maxBuffer) w.shrinkTo(this.maxBuffer, this.commit);
    const p = this.primary;
    if (!p) return;
    if (!this.primaryPaused && w.bytes > this.maxBuffer) {
      this.primaryPaused = true;
      p.pause();
      if (!this.bufferFullLogged) {
        this.bufferFullLogged = true;
        this.log.warn({ bytes: w.bytes, commitLsn: formatLsn(this.commit) }, 'WAL buffer full: reading from the primary waits for the quorum');
      }
    }
    if (this.primaryPaused) {
      // Make room below the commit position, and read again once a quarter of the buffer is free.
      w.shrinkTo(low, this.commit);
      if (w.bytes <= low) {
        this.primaryPaused = false;
        p.resume();
        if (this.bufferFullLogged) {
          this.bufferFullLogged = false;
          this.log.info({ bytes: w.bytes, commitLsn: formatLsn(this.commit) }, 'WAL buffer has room again: reading from the primary');
        }
      }
    }
  }

  private sendStatus(): void {
    this.primary?.sendStatus(this.commit);
  }

  /**
   * Until a quorum acknowledges WAL of this term, only the old commit
   * position is known, and commits the primary made up to the VCL wait. An
   * idle primary writes nothing, so ask it for one small record (an xid
   * assignment whose commit does not wait for synchronous replication).
   */
  private scheduleKick(ms: number): void {
    const t = setTimeout(() => {
      if (this.stopping || this.termStarted) return;
      if (this.window.end === this.vclLsn && this.primary) {
        runSql(this.opts.primary, ['SET synchronous_commit TO local', 'SELECT txid_current()'], `${this.opts.applicationName}-kick`).then(
          () => this.log.info('asked the primary for a WAL record so that this term can start committing'),
          (err) => this.log.warn({ err: (err as Error).message }, 'could not ask the primary for a WAL record; waiting for its next one'),
        );
      }
      this.scheduleKick(5000);
    }, ms);
    t.unref();
    this.timers.push(t);
  }
}
