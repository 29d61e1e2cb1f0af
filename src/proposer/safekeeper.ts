// One safekeeper as the quorum proposer sees it: its WAL push session
// (joined with the leader's term and VCL), what it has acknowledged, and the
// feeding of WAL at its own pace: from the proposer's in-memory window when
// the WAL it needs is there, otherwise from a peer safekeeper's recovery
// stream (application_name wal_proposer_recovery). Appends are pipelined up
// to a byte window; the session is re-established with backoff whenever it
// breaks.
import { formatLsn, segmentFloor, type Lsn } from '../lsn.js';
import { MAX_WAL_PER_REQUEST, REQUEST_HEADER_SIZE } from '../protocol/layout.js';
import { compareNodeId, formatNodeId, nodeIdEquals } from '../protocol/node-id.js';
import type { HotStandbyFeedback, NodeId, SafeKeeperInfo, SafeKeeperResponse, ServerInfo } from '../protocol/types.js';
import { decodeServerCopyData, encodeStatusUpdate, pgNow, RECOVERY_APPLICATION_NAME } from '../pq/streaming.js';
import type { Logger } from '../log.js';
import { ProposerClient, PgServerError } from './client.js';
import { PgClient } from './pg-client.js';
import type { WalWindow } from './wal-window.js';

export interface SafekeeperAddress {
  host: string;
  port: number;
}

/** Another proposer holds a higher term: this one must stop. */
export class LostLeadershipError extends Error {
  override readonly name = 'LostLeadershipError';
}

/** What a link needs from the proposer that owns it. */
export interface LinkHost {
  readonly log: Logger;
  readonly tenantId: string;
  readonly timelineId: string;
  readonly password: string | undefined;
  readonly nodeId: NodeId;
  readonly term: bigint;
  readonly window: WalWindow;
  readonly commit: Lsn;
  readonly windowBytes: number;
  /** Requests in flight to one safekeeper when fed from memory (WAL arriving meanwhile goes into the next one). */
  readonly pipelineDepth: number;
  readonly pgTimeline: number;
  readonly walSegSize: number;
  readonly stopping: boolean;
  serverInfo(): ServerInfo;
  restartLsn(): Lsn;
  /** Resolves with the VCL once the election has fixed it. */
  vcl(): Promise<Lsn>;
  /** Where a safekeeper without any WAL starts. */
  emptyStart(): Lsn;
  /** A link started streaming (it may serve WAL to others now). */
  joined(link: SafekeeperLink): void;
  /** A link's in-epoch flush moved. */
  acked(link: SafekeeperLink): void;
  feedback(): void;
  /** A fatal condition (lost leadership): stop everything. */
  fatal(err: Error): void;
  /** The best peer to read WAL at `lsn` from, other than `exclude`. */
  peerFor(lsn: Lsn, exclude: SafekeeperLink): SafekeeperLink | null;
  backoffMs(failures: number): number;
}

export type LinkState = 'idle' | 'connecting' | 'joining' | 'streaming' | 'down' | 'stopped';

interface InFlight {
  end: Lsn;
  bytes: number;
}

const PROPOSER_APP = 'walkeeper-proposer';

export class SafekeeperLink {
  readonly name: string;
  state: LinkState = 'idle';
  /** The last greeting (SafeKeeperInfo) of this safekeeper. */
  info: SafeKeeperInfo | null = null;
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
  hs: HotStandbyFeedback | null = null;
  /** Granted the vote in the election's first round. */
  voter = false;
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
    private readonly host: LinkHost,
  ) {
    this.name = `${address.host}:${address.port}`;
  }

  private get log(): Logger {
    return this.host.log;
  }

  get connected(): boolean {
    return this.state === 'streaming';
  }

  get catchingUp(): boolean {
    return this.catchup !== null;
  }

  /** Open a connection and greet (the election's first step). */
  async greet(): Promise<{ client: ProposerClient; info: SafeKeeperInfo }> {
    const client = await ProposerClient.connect({
      host: this.address.host,
      port: this.address.port,
      tenantId: this.host.tenantId,
      timelineId: this.host.timelineId,
      applicationName: PROPOSER_APP,
      password: this.host.password,
      connectTimeoutMs: 5000,
    });
    try {
      await client.startWalPush();
      const info = await client.greet(this.host.serverInfo());
      this.info = info;
      return { client, info };
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
   * Start (or keep) the link's session loop. `adopt` is a session already
   * greeted after the vote (the election's second round).
   */
  start(adopt?: { client: ProposerClient; info: SafeKeeperInfo }): void {
    if (this.loopRunning) {
      adopt?.client.close();
      return;
    }
    this.loopRunning = true;
    void this.loop(adopt);
  }

  private async loop(adopt?: { client: ProposerClient; info: SafeKeeperInfo }): Promise<void> {
    try {
      while (!this.host.stopping) {
        try {
          await this.session(adopt);
        } catch (err) {
          if (err instanceof LostLeadershipError) {
            this.host.fatal(err);
            return;
          }
          if (this.host.stopping) return;
          this.failures++;
          this.problem(err, this.state === 'streaming' ? 'WAL push session ended' : 'cannot join');
        } finally {
          adopt = undefined;
          this.teardown();
        }
        if (this.host.stopping) return;
        this.setState('down');
        await new Promise<void>((r) => {
          this.wakeRetry = r;
          this.retryTimer = setTimeout(r, this.host.backoffMs(this.failures));
        });
        this.retryTimer = null;
        this.wakeRetry = null;
      }
    } finally {
      this.loopRunning = false;
    }
  }

  /** One WAL push session: join with the leader's term and VCL, then stream until it breaks. */
  private async session(adopt?: { client: ProposerClient; info: SafeKeeperInfo }): Promise<void> {
    let client: ProposerClient;
    let info: SafeKeeperInfo;
    if (adopt) {
      ({ client, info } = adopt);
    } else {
      this.setState('connecting');
      ({ client, info } = await this.greet());
    }
    this.client = client;
    this.setState('joining');
    const ended = new Promise<never>((_, reject) => {
      this.sessionEnded = reject;
      client.onStreamEnd((err) => reject(err));
    });
    ended.catch(() => {});
    const host = this.host;
    const vote = info.server.nodeId;
    if (compareNodeId(vote, host.nodeId) > 0) {
      throw new LostLeadershipError(`safekeeper ${this.name} has voted for ${formatNodeId(vote)}, above this proposer's ${formatNodeId(host.nodeId)}: another proposer took over the timeline`);
    }
    if (info.server.timeline !== 0 && info.server.timeline !== host.pgTimeline && info.flushLsn !== 0n) {
      throw new LostLeadershipError(
        `safekeeper ${this.name} holds WAL of PostgreSQL timeline ${info.server.timeline}, the primary is on timeline ${host.pgTimeline}: timeline switches are not supported`,
      );
    }
    const vcl = await Promise.race([host.vcl(), ended]);
    const reply = await Promise.race([client.vote({ nodeId: host.nodeId, vcl, epoch: host.term }), ended]);
    if (!nodeIdEquals(reply, host.nodeId)) {
      throw new LostLeadershipError(`safekeeper ${this.name} refused the vote: it has voted for ${formatNodeId(reply)}, above this proposer's ${formatNodeId(host.nodeId)}`);
    }
    // Where this safekeeper's WAL stops being the leader's: all of it when it is in our
    // epoch; otherwise up to the VCL (beyond it an older epoch's WAL is rewritten).
    let start: Lsn;
    if (info.flushLsn === 0n) {
      start = host.emptyStart();
      this.low = start;
    } else {
      start = info.epoch === host.term ? info.flushLsn : info.flushLsn < vcl ? info.flushLsn : vcl;
    }
    this.info = info;
    this.epoch = info.epoch;
    this.flushLsn = info.flushLsn;
    this.next = start;
    this.good = start;
    this.commitSent = 0n;
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
    this.host.joined(this);
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
    this.host.feedback();
  }

  /** End the session on purpose (shutdown): wait briefly for outstanding acks, then end the stream. */
  async stop(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    const c = this.client;
    if (c && this.state === 'streaming') {
      const deadline = Date.now() + 2000;
      while (this.inflightBytes > 0 && this.inflightHead < this.inflight.length && Date.now() < deadline && this.client === c) {
        await new Promise((r) => setTimeout(r, 10));
      }
      try {
        await Promise.race([c.endStream(), new Promise((r) => setTimeout(r, 1000))]);
      } catch {
        /* already gone */
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
    const w = this.host.window;
    const depth = this.host.pipelineDepth;
    while (this.inflightBytes < this.host.windowBytes) {
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
    const commit = this.host.commit;
    try {
      client.append({ senderId: this.host.nodeId, beginLsn: begin, endLsn: end, restartLsn: this.host.restartLsn(), commitLsn: commit, wal });
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
    const bytes = wal.length + REQUEST_HEADER_SIZE;
    this.inflight.push({ end, bytes });
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
    if (this.inflightHead < this.inflight.length || this.commitSent >= this.host.commit) return;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = null;
      if (this.state !== 'streaming' || this.catchup || this.inflightHead < this.inflight.length) return;
      if (this.commitSent < this.host.commit) this.sendAppend(this.next, new Uint8Array(0));
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
    if (r.flushLsn > this.flushLsn) this.flushLsn = r.flushLsn;
    if (r.flushLsn > this.good && r.flushLsn <= f.end) this.good = r.flushLsn;
    const hsChanged = this.hs === null || this.hs.xmin !== r.hsFeedback.xmin || this.hs.catalogXmin !== r.hsFeedback.catalogXmin;
    this.hs = r.hsFeedback;
    if (r.epoch === this.host.term && r.flushLsn > this.ackedLsn) {
      this.ackedLsn = r.flushLsn;
      this.host.acked(this);
    }
    if (hsChanged) this.host.feedback();
    if (this.catchup) this.catchup.acked();
    else this.pump();
  }

  // ---- catching up from a peer ----

  private startCatchup(): void {
    if (this.catchup || this.pumpTimer) return;
    const peer = this.host.peerFor(this.next, this);
    if (!peer) {
      if (!this.waitingForPeerLogged) {
        this.waitingForPeerLogged = true;
        this.log.warn(
          { safekeeper: this.name, lsn: formatLsn(this.next), windowStart: formatLsn(this.host.window.start) },
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
    const c = new CatchUp(this, peer, this.host, this.next);
    this.catchup = c;
    this.log.info({ safekeeper: this.name, from: peer.name, lsn: formatLsn(this.next), upto: formatLsn(peer.good) }, 'safekeeper catching up from a peer');
    void c.run().then((progress) => {
      if (this.catchup !== c) return;
      this.catchup = null;
      if (this.state !== 'streaming') return;
      if (this.next >= this.host.window.start) {
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
    const floor = segmentFloor(lsn, this.host.walSegSize) + BigInt(this.host.walSegSize);
    if (floor > this.low) this.low = floor;
  }
}

/**
 * A recovery stream from `peer` into `target`: WAL from `from` up to what the
 * peer is known to hold, until the target reaches the proposer's window.
 * The peer's socket is paused while the target has a full window in flight.
 */
class CatchUp {
  private client: PgClient | null = null;
  private paused = false;
  private cancelled = false;
  private pos: Lsn;
  private readonly limit: Lsn;

  constructor(
    private readonly target: SafekeeperLink,
    private readonly peer: SafekeeperLink,
    private readonly host: LinkHost,
    from: Lsn,
  ) {
    this.pos = from;
    this.limit = peer.good;
  }

  /** Resolves when the stream is over; true when it moved the target forward. */
  async run(): Promise<boolean> {
    const start = this.pos;
    try {
      const client = await PgClient.connect({
        host: this.peer.address.host,
        port: this.peer.address.port,
        user: 'walproposer',
        database: 'replication',
        password: this.host.password,
        replication: true,
        applicationName: RECOVERY_APPLICATION_NAME,
        params: { ztenantid: this.host.tenantId, ztimelineid: this.host.timelineId },
        connectTimeoutMs: 5000,
      });
      if (this.cancelled) {
        client.close();
        return false;
      }
      this.client = client;
      await new Promise<void>((resolve, reject) => {
        client
          .copyBoth(`START_REPLICATION ${formatLsn(this.pos)} TIMELINE ${this.host.pgTimeline}`, {
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
        this.host.log.warn({ safekeeper: this.target.name, from: this.peer.name, lsn: formatLsn(this.pos), err: (err as Error).message }, 'catch-up from a peer failed');
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
    if (this.pos >= this.limit || this.pos >= this.host.window.start) {
      this.finish();
      return;
    }
    if (!this.paused && this.target.inflightBytes >= this.host.windowBytes) {
      this.paused = true;
      this.client?.pause();
    }
  }

  /** The target acknowledged something: resume the peer when there is room again. */
  acked(): void {
    if (this.paused && this.target.inflightBytes < this.host.windowBytes / 2) {
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
