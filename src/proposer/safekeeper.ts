// One safekeeper as the quorum proposer sees it: its WAL push session
// (joined with the leader's term and VCL), what it has acknowledged, and the
// feeding of WAL at its own pace: from the leader's in-memory window when
// the WAL it needs is there, otherwise from a peer safekeeper (catch-up.ts).
// Appends are pipelined up to a byte window; the session is re-established
// with backoff whenever it breaks. The link reads the term through a
// read-only LeaderView and reports through LinkEvents.
import { formatLsn, segmentFloor, type Lsn } from '../lsn.js';
import { MAX_WAL_PER_REQUEST, REQUEST_HEADER_SIZE } from '../protocol/layout.js';
import { compareNodeId, formatNodeId, nodeIdEquals } from '../protocol/node-id.js';
import type { HotStandbyFeedback, SafeKeeperResponse, ServerInfo } from '../protocol/types.js';
import type { Logger } from '../log.js';
import { CatchUp } from './catch-up.js';
import { ProposerClient } from './client.js';
import type { ElectionMember, Greeted } from './elect.js';
import { LostLeadershipError } from './errors.js';
import type { LeaderView, LinkEvents, LinkSettings } from './link-contract.js';
import { putTimelineHistoryQuery, type TimelineHistory } from './timeline-history.js';

export interface SafekeeperAddress {
  host: string;
  port: number;
}

export type LinkState = 'idle' | 'connecting' | 'joining' | 'streaming' | 'down' | 'stopped';

interface InFlight {
  end: Lsn;
  bytes: number;
  /** The commit position the request carried. */
  commit: Lsn;
}

const PROPOSER_APP = 'walkeeper-proposer';

export class SafekeeperLink implements ElectionMember {
  readonly name: string;
  state: LinkState = 'idle';
  /** Next WAL byte to send. */
  next: Lsn = 0n;
  /** The safekeeper's WAL in [low, good) is known to be the leader's. */
  good: Lsn = 0n;
  /** Lowest position it holds WAL from (0 = unknown, assume from the start). */
  low: Lsn = 0n;
  /** Highest flush acknowledged with epoch = our term: counts for the commit position. */
  ackedLsn: Lsn = 0n;
  /** Flush position as last reported (any epoch). */
  flushLsn: Lsn = 0n;
  epoch = 0n;
  /** The highest commit position sent in a request this session's safekeeper has answered. */
  commitAcked: Lsn = 0n;
  hs: HotStandbyFeedback | null = null;
  /** The term it streams in; set by start(). */
  private leader: LeaderView | null = null;
  private stopped = false;
  private client: ProposerClient | null = null;
  private inflight: InFlight[] = [];
  private inflightHead = 0;
  inflightBytes = 0;
  private commitSent = 0n;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private wakeRetry: (() => void) | null = null;
  private pumpTimer: NodeJS.Timeout | null = null;
  private catchup: CatchUp | null = null;
  private failures = 0;
  private lastProblem = '';
  private sessionEnded: ((err: Error) => void) | null = null;
  private loopRunning = false;
  private waitingForPeerLogged = false;
  readonly stats = { appends: 0, bytes: 0, heartbeats: 0, sessions: 0, catchups: 0 };

  constructor(
    readonly address: SafekeeperAddress,
    private readonly settings: LinkSettings,
    private readonly events: LinkEvents,
  ) {
    this.name = `${address.host}:${address.port}`;
  }

  private get log(): Logger {
    return this.settings.log;
  }

  get connected(): boolean {
    return this.state === 'streaming';
  }

  get catchingUp(): boolean {
    return this.catchup !== null;
  }

  /**
   * Open a connection, start a WAL push session and greet with `server`.
   * `history` (the primary's timeline history file) is stored on the
   * safekeeper first, so that a greeting on a newer PostgreSQL timeline can
   * move it there (docs/protocol.md §7.10).
   */
  async greet(server: ServerInfo, history?: TimelineHistory): Promise<Greeted> {
    const { settings } = this;
    const client = await ProposerClient.connect({
      host: this.address.host,
      port: this.address.port,
      tenantId: settings.tenantId,
      timelineId: settings.timelineId,
      applicationName: PROPOSER_APP,
      password: settings.password,
      tls: settings.tls,
      connectTimeoutMs: 5000,
    });
    try {
      if (history) await client.query(putTimelineHistoryQuery(history.timeline, history.content));
      await client.startWalPush();
      return { client, info: await client.greet(server) };
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** Note a problem; logged once until it changes or the link recovers. */
  problem(err: unknown, what: string): void {
    const msg = `${what}: ${(err as Error)?.message ?? String(err)}`;
    if (this.lastProblem !== '') {
      // Already reported as unavailable: further failures until it is back are details.
      if (msg !== this.lastProblem) this.log.debug({ safekeeper: this.name, err: msg }, 'safekeeper still unavailable');
      this.lastProblem = msg;
      return;
    }
    this.lastProblem = msg;
    this.log.warn({ safekeeper: this.name, err: msg }, 'safekeeper unavailable; retrying with backoff');
  }

  private setState(s: LinkState, fields: Record<string, unknown> = {}, msg?: string): void {
    if (this.state === s) return;
    this.state = s;
    if (msg) this.log.info({ safekeeper: this.name, ...fields }, msg);
  }

  /**
   * Start (or keep) the link's session loop in `leader`'s term. Every
   * session greets with the term's real identity (the election's were
   * anonymous) and joins.
   */
  start(leader: LeaderView): void {
    if (this.loopRunning || this.stopped) return;
    this.leader = leader;
    this.loopRunning = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (!this.stopped) {
        try {
          await this.session();
        } catch (err) {
          if (err instanceof LostLeadershipError) {
            this.events.fatal(err);
            return;
          }
          if (this.stopped) return;
          this.failures++;
          this.problem(err, this.state === 'streaming' ? 'WAL push session ended' : 'cannot join');
        } finally {
          this.teardown();
        }
        if (this.stopped) return;
        this.setState('down');
        await new Promise<void>((r) => {
          this.wakeRetry = r;
          this.retryTimer = setTimeout(r, this.settings.backoffMs(this.failures));
        });
        this.retryTimer = null;
        this.wakeRetry = null;
      }
    } finally {
      this.loopRunning = false;
    }
  }

  /** One WAL push session: join with the leader's term and VCL, then stream until it breaks. */
  private async session(): Promise<void> {
    const leader = this.leader!;
    this.setState('connecting');
    const { client, info } = await this.greet(leader.serverInfo(), leader.history ?? undefined);
    this.client = client;
    this.setState('joining');
    const ended = new Promise<never>((_, reject) => {
      this.sessionEnded = reject;
      client.onStreamEnd((err) => reject(err));
    });
    ended.catch(() => {});
    const vote = info.server.nodeId;
    if (compareNodeId(vote, leader.nodeId) > 0) {
      throw new LostLeadershipError(`safekeeper ${this.name} has voted for ${formatNodeId(vote)}, above this proposer's ${formatNodeId(leader.nodeId)}: another proposer took over the timeline`);
    }
    const vcl = leader.vcl;
    const reply = await Promise.race([client.vote({ nodeId: leader.nodeId, vcl, epoch: leader.term }), ended]);
    if (!nodeIdEquals(reply, leader.nodeId)) {
      throw new LostLeadershipError(`safekeeper ${this.name} refused the vote: it has voted for ${formatNodeId(reply)}, above this proposer's ${formatNodeId(leader.nodeId)}`);
    }
    // Where this safekeeper's WAL stops being the leader's: all of it when it is in our
    // epoch; otherwise up to the VCL (beyond it an older epoch's WAL is rewritten).
    let start: Lsn;
    if (info.flushLsn === 0n) {
      start = leader.emptyStart();
      this.low = start;
    } else {
      start = info.epoch === leader.term ? info.flushLsn : info.flushLsn < vcl ? info.flushLsn : vcl;
    }
    this.epoch = info.epoch;
    this.flushLsn = info.flushLsn;
    this.next = start;
    this.good = start;
    this.commitSent = 0n;
    this.commitAcked = 0n;
    this.inflight = [];
    this.inflightHead = 0;
    this.inflightBytes = 0;
    client.setResponseHandler((r) => this.onResponse(r));
    this.failures = 0;
    this.lastProblem = '';
    this.stats.sessions++;
    this.setState(
      'streaming',
      { flushLsn: formatLsn(info.flushLsn), epoch: info.epoch.toString(), startLsn: formatLsn(start), vcl: formatLsn(vcl) },
      start < info.flushLsn ? 'safekeeper joined; its WAL after the start position is rewritten' : 'safekeeper joined',
    );
    this.events.joined();
    this.pump();
    await ended;
  }

  /** A peer became available: if waiting for one, try again now. */
  peerAvailable(): void {
    if (!this.waitingForPeerLogged || !this.pumpTimer) return;
    clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    this.pump();
  }

  private teardown(): void {
    this.sessionEnded = null;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    this.catchup?.cancel();
    this.catchup = null;
    this.client?.close();
    this.client = null;
    this.inflight = [];
    this.inflightHead = 0;
    this.inflightBytes = 0;
    this.hs = null;
    this.events.feedbackChanged();
  }

  /** End the session on purpose (shutdown): wait briefly for outstanding acks, then end the stream. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    const c = this.client;
    if (c && this.state === 'streaming') {
      const deadline = Date.now() + 2000;
      while (this.inflightBytes > 0 && this.inflightHead < this.inflight.length && Date.now() < deadline && this.client === c) {
        await new Promise((r) => setTimeout(r, 10));
      }
      // Cleared once the stream ended: left running, it kept a finished promote or sync-safekeepers alive for up to 1 s.
      let bound: NodeJS.Timeout | undefined;
      try {
        await Promise.race([c.endStream(), new Promise((r) => (bound = setTimeout(r, 1000)))]);
      } catch {
        /* already gone */
      } finally {
        clearTimeout(bound);
      }
    }
    this.teardown();
    this.state = 'stopped';
  }

  /** Break the session (it will be re-established). */
  fail(err: Error): void {
    this.sessionEnded?.(err);
  }

  // ---- sending ----

  /** Send what the window holds for this safekeeper, up to the in-flight limit. */
  pump(): void {
    if (this.state !== 'streaming' || this.catchup || !this.client) return;
    const w = this.leader!.window;
    const depth = this.settings.pipelineDepth;
    while (this.inflightBytes < this.settings.windowBytes) {
      if (this.next < w.start) {
        this.startCatchup();
        return;
      }
      const data = w.slice(this.next, MAX_WAL_PER_REQUEST);
      if (!data) break;
      // With `depth` requests in flight, a small piece waits: what arrives meanwhile
      // joins it, so one request (and one fsync) covers many commits. Full-size
      // requests (bulk WAL) are pipelined up to the byte window.
      if (this.inflight.length - this.inflightHead >= depth && data.length < MAX_WAL_PER_REQUEST) break;
      if (!this.sendAppend(this.next, data)) return;
    }
    this.maybeHeartbeat();
  }

  /** One SafeKeeperRequest; false when the session is gone. */
  sendAppend(begin: Lsn, wal: Uint8Array): boolean {
    const client = this.client;
    if (!client) return false;
    const end = begin + BigInt(wal.length);
    const leader = this.leader!;
    const commit = leader.commit;
    try {
      client.append({ senderId: leader.nodeId, beginLsn: begin, endLsn: end, restartLsn: leader.restartLsn(), commitLsn: commit, wal });
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
    const bytes = wal.length + REQUEST_HEADER_SIZE;
    this.inflight.push({ end, bytes, commit });
    this.inflightBytes += bytes;
    this.next = end;
    this.commitSent = commit;
    if (wal.length > 0) {
      this.stats.appends++;
      this.stats.bytes += wal.length;
    } else {
      this.stats.heartbeats++;
    }
    return true;
  }

  /** The commit position moved. */
  commitMoved(): void {
    this.maybeHeartbeat();
  }

  /** An idle safekeeper learns a new commit position through an empty request (so its readers can follow), shortly after it moves. */
  private maybeHeartbeat(): void {
    if (this.heartbeatTimer || this.state !== 'streaming' || this.catchup) return;
    if (this.inflightHead < this.inflight.length || this.commitSent >= this.leader!.commit) return;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = null;
      if (this.state !== 'streaming' || this.catchup || this.inflightHead < this.inflight.length) return;
      if (this.commitSent < this.leader!.commit) this.sendAppend(this.next, new Uint8Array(0));
    }, 10);
  }

  private onResponse(r: SafeKeeperResponse): void {
    const f = this.inflight[this.inflightHead++];
    if (!f) {
      this.fail(new Error(`${this.name} sent a response nothing was waiting for`));
      return;
    }
    this.inflightBytes -= f.bytes;
    if (this.inflightHead === this.inflight.length) {
      this.inflight = [];
      this.inflightHead = 0;
    } else if (this.inflightHead > 1024) {
      this.inflight = this.inflight.slice(this.inflightHead);
      this.inflightHead = 0;
    }
    this.epoch = r.epoch;
    if (f.commit > this.commitAcked) this.commitAcked = f.commit;
    if (r.flushLsn > this.flushLsn) this.flushLsn = r.flushLsn;
    if (r.flushLsn > this.good && r.flushLsn <= f.end) this.good = r.flushLsn;
    const hsChanged = this.hs === null || this.hs.xmin !== r.hsFeedback.xmin || this.hs.catalogXmin !== r.hsFeedback.catalogXmin;
    this.hs = r.hsFeedback;
    if (r.epoch === this.leader!.term && r.flushLsn > this.ackedLsn) {
      this.ackedLsn = r.flushLsn;
      this.events.acked();
    }
    if (hsChanged) this.events.feedbackChanged();
    this.events.answered?.(this);
    if (this.catchup) this.catchup.acked();
    else this.pump();
  }

  // ---- catching up from a peer ----

  private startCatchup(): void {
    if (this.catchup || this.pumpTimer) return;
    const leader = this.leader!;
    const peer = leader.peerFor(this.next, this);
    if (!peer) {
      if (!this.waitingForPeerLogged) {
        this.waitingForPeerLogged = true;
        this.log.warn(
          { safekeeper: this.name, lsn: formatLsn(this.next), windowStart: formatLsn(leader.window.start) },
          'safekeeper needs WAL that is no longer in memory and no peer can serve it yet; waiting',
        );
      }
      this.pumpTimer = setTimeout(() => {
        this.pumpTimer = null;
        this.pump();
      }, 500);
      return;
    }
    this.waitingForPeerLogged = false;
    this.stats.catchups++;
    const c = new CatchUp(this, peer, this.settings, leader, this.next);
    this.catchup = c;
    this.log.info({ safekeeper: this.name, from: peer.name, lsn: formatLsn(this.next), upto: formatLsn(peer.good) }, 'safekeeper catching up from a peer');
    void c.run().then((progress) => {
      if (this.catchup !== c) return;
      this.catchup = null;
      if (this.state !== 'streaming') return;
      if (this.next >= leader.window.start) {
        this.log.info({ safekeeper: this.name, lsn: formatLsn(this.next) }, 'safekeeper caught up; streaming from memory');
        this.pump();
      } else {
        // The peer had no more (or failed): try again shortly, perhaps from another peer.
        this.pumpTimer = setTimeout(
          () => {
            this.pumpTimer = null;
            this.pump();
          },
          progress ? 0 : 500,
        );
      }
    });
  }

  /** The peer could not serve WAL at `lsn` (its segment is gone): remember it. */
  noteMissing(lsn: Lsn): void {
    const segSize = this.leader!.walSegSize;
    const floor = segmentFloor(lsn, segSize) + BigInt(segSize);
    if (floor > this.low) this.low = floor;
  }
}
