// A simulated proposer (compute node): runs elections against the acceptor
// nodes over simulated connections, recovers the most advanced WAL, then
// streams synthetic records and counts commits. It follows the recipe in
// src/proposer/election.ts; `flaw` switches on known-unsafe shortcuts.
import { formatLsn } from '../../src/lsn.js';
import { divergence, nextTerm, pickDonor, quorumCommitLsn, quorumSize } from '../../src/proposer/election.js';
import {
  compareNodeId,
  decodeNodeId,
  decodeSafeKeeperInfo,
  decodeSafeKeeperResponse,
  encodeRequestVote,
  encodeSafeKeeperRequest,
  encodeServerInfo,
  type NodeId,
  type SafeKeeperInfo,
} from '../../src/protocol/index.js';
import type { Checker } from './checker.js';
import { Bytes } from './disk.js';
import type { SimAcceptorNode } from './node.js';
import { BASE_LSN, SYSTEM_ID, TENANT_ID, TIMELINE_ID, WAL_SEG_SIZE, type ProposerFlaw } from './options.js';
import type { Prng } from './prng.js';
import { makeRecord, scanRecords, type RecordInfo } from './records.js';
import type { Conn, ConnEnd, ToProposer, World } from './world.js';

type Phase = 'idle' | 'round1' | 'round2' | 'recover' | 'leader';
/** What a session waits for next. */
type Stage = 'info' | 'greeted' | 'vote' | 'granted' | 'waitVcl' | 'wal' | 'stream';

interface Session {
  conn: Conn;
  node: number;
  /** 1: election vote; 2: post-vote look and vote with the VCL; 3: a later (re)connection of the leader. */
  round: 1 | 2 | 3;
  stage: Stage;
  info?: SafeKeeperInfo;
  /** The acceptor's WAL from the recovery read, until the leader's own log is known. */
  theirs?: Uint8Array;
  /** Offset (from BASE_LSN) of the next WAL byte to send. */
  next: number;
  /** Ends of the requests awaiting a response, in order. */
  inflight: number[];
  commitSent: bigint;
}

const WINDOW = 4;
const MAX_LOG = 6000;
const PAYLOAD_SIZES = [4, 12, 28, 44];

export class SimProposer implements ConnEnd<ToProposer> {
  phase: Phase = 'idle';
  private incarnation = 0;
  private highestSeen = 0n;
  private term = 0n;
  private nodeId: NodeId;
  private readonly uuid: Uint8Array;
  private sessions = new Map<number, Session>();
  private byConn = new Map<Conn, Session>();
  private granted = new Set<number>();
  private infos2 = new Map<number, SafeKeeperInfo>();
  private vcl = -1n;
  private donor = -1;
  private donorWal: Uint8Array | null = null;
  private log = new Bytes();
  private records: RecordInfo[] = [];
  private committedUpTo = 0;
  private prevLink = 0;
  private seq = 0;
  private acked: bigint[];
  private commit = 0n;
  private deadline = 0;
  private wakeAt: number;
  private retryAt: number[];

  constructor(
    readonly index: number,
    private readonly count: number,
    private readonly world: World,
    private readonly nodes: SimAcceptorNode[],
    private readonly checker: Checker,
    private readonly rng: Prng,
    private readonly flaw: ProposerFlaw | undefined,
    private readonly trace: (line: string) => void,
  ) {
    this.uuid = Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? index + 1 : 0x50));
    this.nodeId = { term: 0n, uuid: this.uuid };
    this.acked = nodes.map(() => 0n);
    this.retryAt = nodes.map(() => 0);
    this.wakeAt = rng.int(0, 40);
  }

  private get who(): string {
    return `P${this.index}.${this.incarnation}/t${this.term}`;
  }

  private get quorum(): number {
    return quorumSize(this.nodes.length);
  }

  // ---- driving ----

  tick(): void {
    const now = this.world.now;
    switch (this.phase) {
      case 'idle':
        if (now >= this.wakeAt) this.startElection();
        break;
      case 'round1':
      case 'round2':
      case 'recover':
        if (now > this.deadline) this.stepDown('election timed out');
        break;
      case 'leader':
        if (this.rng.chance(0.004)) return this.stepDown('steps down');
        this.produce();
        this.reconnect();
        for (const s of this.sessions.values()) this.pump(s);
        break;
    }
  }

  crash(): void {
    this.trace(`${this.who} crashes`);
    this.stepDown('crashed');
    this.highestSeen = 0n;
  }

  private startElection(): void {
    this.incarnation++;
    this.reset();
    this.phase = 'round1';
    this.deadline = this.world.now + 200;
    this.trace(`${this.who} starts an election`);
    for (let i = 0; i < this.nodes.length; i++) this.open(i, 1);
  }

  private reset(): void {
    for (const s of this.byConn.values()) this.world.close(s.conn);
    this.sessions.clear();
    this.byConn.clear();
    this.granted.clear();
    this.infos2.clear();
    this.term = 0n;
    this.vcl = -1n;
    this.donor = -1;
    this.donorWal = null;
    this.log = new Bytes();
    this.records = [];
    this.committedUpTo = 0;
    this.prevLink = 0;
    this.seq = 0;
    this.acked = this.nodes.map(() => 0n);
    this.commit = 0n;
  }

  private stepDown(why: string): void {
    if (this.phase !== 'idle') this.trace(`${this.who} ${why}`);
    this.reset();
    this.phase = 'idle';
    this.wakeAt = this.world.now + this.rng.int(10, 150);
  }

  private open(node: number, round: 1 | 2 | 3): void {
    const conn = this.world.connect(this, this.nodes[node], node);
    const s: Session = { conn, node, round, stage: 'info', next: 0, inflight: [], commitSent: 0n };
    this.sessions.set(node, s);
    this.byConn.set(conn, s);
    // Round 1 only reads the state: an anonymous greeting (docs/protocol.md §5.3), as the quorum proposer's is.
    const anonymous = round === 1;
    this.world.toNode(conn, {
      kind: 'greet',
      bytes: encodeServerInfo({
        protocolVersion: 1,
        pgVersion: anonymous ? 0 : 150004,
        nodeId: this.nodeId,
        systemId: anonymous ? 0n : SYSTEM_ID,
        timelineId: TIMELINE_ID,
        walEnd: BASE_LSN + BigInt(this.log.len),
        timeline: anonymous ? 0 : 1,
        walSegSize: anonymous ? 0 : WAL_SEG_SIZE,
        tenantId: TENANT_ID,
      }),
    });
  }

  private sendVote(s: Session, vcl: bigint, epoch: bigint): void {
    s.stage = 'vote';
    this.world.toNode(s.conn, { kind: 'vote', bytes: encodeRequestVote({ nodeId: this.nodeId, vcl, epoch }) });
  }

  // ---- connection events ----

  onClosed(conn: Conn): void {
    const s = this.byConn.get(conn);
    if (!s) return;
    this.byConn.delete(conn);
    if (this.sessions.get(s.node) === s) this.sessions.delete(s.node);
    if (this.phase === 'leader') this.retryAt[s.node] = this.world.now + this.rng.int(5, 40);
    if ((this.phase === 'round2' || this.phase === 'recover') && s.node === this.donor && !this.donorWal) {
      this.stepDown(`lost the donor A${s.node}`);
    }
  }

  onMessage(conn: Conn, msg: ToProposer): void {
    const s = this.byConn.get(conn);
    if (!s || msg.kind === 'error') return; // an error is followed by the connection closing
    switch (s.stage) {
      case 'info':
        if (msg.kind === 'info') return this.onInfo(s, decodeSafeKeeperInfo(msg.bytes));
        break;
      case 'vote':
        if (msg.kind === 'voteReply') return this.onVoteReply(s, decodeNodeId(msg.bytes));
        break;
      case 'wal':
        if (msg.kind === 'wal') return this.onWal(s, msg.bytes);
        break;
      case 'stream':
        if (msg.kind === 'response') return this.onResponse(s, msg.bytes);
        break;
    }
    throw new Error(`${this.who}: unexpected ${msg.kind} from A${s.node} in stage ${s.stage}`);
  }

  private onInfo(s: Session, info: SafeKeeperInfo): void {
    const vote = info.server.nodeId;
    if (vote.term > this.highestSeen) this.highestSeen = vote.term;
    s.info = info;
    if (s.round === 1) {
      s.stage = 'greeted';
      if (this.term !== 0n) return this.sendVote(s, this.vcl < 0n ? 0n : this.vcl, this.flaw === 'single-round' ? this.term : 0n);
      const greeted = [...this.sessions.values()].filter((x) => x.stage === 'greeted');
      if (greeted.length < this.quorum) return;
      this.term = this.flaw === 'shared-terms' ? nextTerm(this.highestSeen) : nextTerm(this.highestSeen, { index: this.index, count: this.count });
      this.nodeId = { term: this.term, uuid: this.uuid };
      if (this.flaw === 'single-round') {
        // Unsafe shortcut: VCL from greetings taken before the vote.
        this.donor = greeted[pickDonor(greeted.map((x) => x.info!))].node;
        this.vcl = this.sessions.get(this.donor)!.info!.flushLsn;
      }
      this.trace(`${this.who} asks for votes`);
      for (const g of greeted) this.sendVote(g, this.vcl < 0n ? 0n : this.vcl, this.flaw === 'single-round' ? this.term : 0n);
      return;
    }
    if (compareNodeId(vote, this.nodeId) > 0) return this.stepDown(`sees a higher vote ${vote.term} on A${s.node}`);
    if (s.round === 2) {
      s.stage = 'waitVcl';
      this.infos2.set(s.node, info);
      if (this.vcl >= 0n) return this.sendVote(s, this.vcl, this.term);
      if (this.infos2.size < this.quorum) return;
      const nodes = [...this.infos2.keys()];
      this.donor = nodes[pickDonor([...this.infos2.values()])];
      this.vcl = this.infos2.get(this.donor)!.flushLsn;
      this.phase = 'recover';
      this.trace(`${this.who} VCL ${formatLsn(this.vcl)} from A${this.donor}`);
      for (const x of this.sessions.values()) if (x.stage === 'waitVcl') this.sendVote(x, this.vcl, this.term);
      return;
    }
    this.sendVote(s, this.vcl, this.term);
  }

  private onVoteReply(s: Session, reply: NodeId): void {
    if (compareNodeId(reply, this.nodeId) !== 0) {
      if (reply.term > this.highestSeen) this.highestSeen = reply.term;
      return this.stepDown(`refused by A${s.node} (vote ${reply.term})`);
    }
    if (s.round === 1 && this.flaw !== 'single-round') {
      s.stage = 'granted';
      this.granted.add(s.node);
      if (this.phase !== 'round1' || this.granted.size < this.quorum) return;
      // Elected. Look again, now that no older leader can append to these acceptors.
      this.phase = 'round2';
      this.trace(`${this.who} won the vote`);
      for (const node of this.granted) {
        const old = this.sessions.get(node);
        if (old) {
          this.byConn.delete(old.conn);
          this.world.close(old.conn);
        }
        this.open(node, 2);
      }
      return;
    }
    s.stage = 'wal';
    this.world.toNode(s.conn, { kind: 'read' });
    if (this.flaw === 'single-round' && this.phase === 'round1') {
      this.granted.add(s.node);
      if (this.granted.size >= this.quorum) {
        this.phase = 'recover';
        this.tryLead();
      }
    }
  }

  private onWal(s: Session, wal: Uint8Array): void {
    s.theirs = wal;
    if (this.phase === 'leader') return this.startStream(s);
    if (s.node === this.donor && !this.donorWal) {
      this.donorWal = wal;
      this.tryLead();
    }
  }

  private tryLead(): void {
    if (this.phase !== 'recover' || !this.donorWal) return;
    const { records, end } = scanRecords(this.donorWal, this.donorWal.length, BASE_LSN);
    const donorEnd = records.length === 0 ? 0n : end;
    if (donorEnd !== this.vcl) return this.stepDown(`donor A${this.donor} WAL ends at ${formatLsn(donorEnd)}, not at VCL ${formatLsn(this.vcl)}`);
    this.log.write(0, this.donorWal);
    this.records = records;
    this.prevLink = records.length > 0 ? Number(records[records.length - 1].lsn - BASE_LSN) + 1 : 0;
    this.phase = 'leader';
    this.trace(`${this.who} leads from VCL ${formatLsn(this.vcl)} (${records.length} records)`);
    this.checker.onLeader(this.who, this.term, records);
    for (const s of this.sessions.values()) if (s.theirs) this.startStream(s);
  }

  private startStream(s: Session): void {
    const theirs = s.theirs!;
    s.theirs = undefined;
    s.next = divergence(this.log.view(), theirs);
    s.stage = 'stream';
    this.pump(s);
  }

  private onResponse(s: Session, bytes: Uint8Array): void {
    const resp = decodeSafeKeeperResponse(bytes);
    s.inflight.shift();
    // Only an acceptor in our epoch is known to hold our WAL below its flush position.
    const inEpoch = resp.epoch === this.term || this.flaw === 'any-epoch-acks';
    if (inEpoch && resp.flushLsn > this.acked[s.node]) {
      this.acked[s.node] = resp.flushLsn;
      this.updateCommit();
    }
    this.pump(s);
  }

  // ---- leading ----

  private produce(): void {
    if (this.log.len > MAX_LOG) return;
    for (let k = this.rng.int(0, 2); k > 0; k--) {
      // Few distinct sizes, as in real WAL (many same-sized records): stale records can then line up.
      const rec = makeRecord(this.prevLink, Number(this.term), ++this.seq, this.rng.bytes(this.rng.pick(PAYLOAD_SIZES)));
      const lsn = BASE_LSN + BigInt(this.log.len);
      this.log.write(this.log.len, rec.bytes);
      this.records.push({ lsn, end: lsn + BigInt(rec.bytes.length), term: Number(this.term), seq: this.seq, crc: rec.crc });
      this.prevLink = this.log.len - rec.bytes.length + 1;
    }
  }

  private reconnect(): void {
    for (let i = 0; i < this.nodes.length; i++) {
      if (!this.sessions.has(i) && this.world.now >= this.retryAt[i]) this.open(i, 3);
    }
  }

  private pump(s: Session): void {
    if (s.stage !== 'stream' || !s.conn.open) return;
    while (s.inflight.length < WINDOW && s.next < this.log.len) {
      // Chunks cut records anywhere, as PostgreSQL's flush position does.
      const end = Math.min(this.log.len, s.next + this.rng.int(1, 150));
      this.sendAppend(s, s.next, end);
    }
    if (s.inflight.length === 0 && s.commitSent < this.commit) this.sendAppend(s, s.next, s.next); // heartbeat
  }

  private sendAppend(s: Session, from: number, to: number): void {
    this.world.toNode(s.conn, {
      kind: 'append',
      bytes: encodeSafeKeeperRequest({
        senderId: this.nodeId,
        beginLsn: BASE_LSN + BigInt(from),
        endLsn: BASE_LSN + BigInt(to),
        restartLsn: 0n,
        commitLsn: this.commit,
        wal: this.log.buf.subarray(from, to),
      }),
    });
    s.inflight.push(to);
    s.next = to;
    s.commitSent = this.commit;
  }

  private updateCommit(): void {
    const c = quorumCommitLsn(this.acked, this.quorum);
    if (c <= this.commit) return;
    this.commit = c;
    const newly: RecordInfo[] = [];
    while (this.committedUpTo < this.records.length && this.records[this.committedUpTo].end <= c) newly.push(this.records[this.committedUpTo++]);
    this.checker.onCommit(this.who, c, newly);
  }
}
