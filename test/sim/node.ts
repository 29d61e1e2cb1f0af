// A simulated acceptor node: the real Acceptor over an in-memory disk with
// crash semantics, hosted the way the daemon hosts it (decode, call, sync
// WAL before replying, one session per connection).
import { Acceptor, AcceptorError, type AcceptorSession, type AcceptorStorage } from '../../src/acceptor/index.js';
import {
  ProtocolError,
  decodeControlFile,
  decodeRequestVote,
  decodeSafeKeeperRequest,
  decodeServerInfo,
  encodeControlFile,
  encodeNodeId,
  encodeSafeKeeperInfo,
  encodeSafeKeeperResponse,
  type SafeKeeperInfo,
  type SafeKeeperResponse,
} from '../../src/protocol/index.js';
import type { HistoryEntry } from '../../src/wal/history.js';
import type { Checker } from './checker.js';
import { SimDisk } from './disk.js';
import { BASE_LSN, type AcceptorBug } from './options.js';
import type { Prng } from './prng.js';
import { scanRecords, type RecordInfo } from './records.js';
import type { Conn, NodeEnd, ToAcceptor, World } from './world.js';

class SimStorage implements AcceptorStorage {
  constructor(
    private readonly node: SimAcceptorNode,
    private readonly bug: AcceptorBug | undefined,
  ) {}

  private get disk(): SimDisk {
    return this.node.disk;
  }

  loadControl(): SafeKeeperInfo | null {
    return this.disk.control ? decodeControlFile(this.disk.control, `acceptor ${this.node.index} control file`) : null;
  }

  persistControl(state: SafeKeeperInfo): void {
    const bytes = encodeControlFile(state);
    if (this.bug === 'vote-not-durable') this.disk.controlPending = bytes;
    else this.disk.control = bytes;
    this.node.checker.onPersist(this.node.index, state);
    this.node.onPersisted();
  }

  writeWal(lsn: bigint, bytes: Uint8Array): void {
    this.disk.write(offset(lsn), bytes);
  }

  truncateWal(lsn: bigint): void {
    if (this.bug === 'no-truncate') return;
    if (this.bug === 'keep-torn-tail' && lsn >= this.node.walEnd()) return;
    this.disk.truncate(offset(lsn));
    this.node.checker.onDurableChange();
  }

  syncWal(): void {
    if (this.bug === 'no-sync-before-persist') return;
    this.disk.sync();
  }

  timelineHistory(tli: number): readonly HistoryEntry[] | null {
    return this.disk.histories.get(tli) ?? null;
  }

  // One flat WAL array: the new timeline's bytes before the switch are the parent's already.
  beginTimeline(): void {}
}

function offset(lsn: bigint): number {
  if (lsn < BASE_LSN) throw new Error(`simulated WAL starts at ${BASE_LSN}, got ${lsn}`);
  return Number(lsn - BASE_LSN);
}

interface PendingAck {
  conn: Conn;
  response: SafeKeeperResponse;
}

export class SimAcceptorNode implements NodeEnd {
  readonly disk = new SimDisk();
  up = true;
  isolated = false;
  incarnation = 1;
  /** Fault hook: the control file was just persisted (a crash right now is the interesting case). */
  onPersisted: () => void = () => {};
  acceptor: Acceptor;
  private sessions = new Map<Conn, AcceptorSession>();
  private pendingAcks: PendingAck[] = [];
  private syncScheduled = false;
  private scanCache: { version: number; records: RecordInfo[]; byLsn: Map<bigint, number> } | null = null;

  constructor(
    readonly index: number,
    readonly world: World,
    readonly checker: Checker,
    private readonly rng: Prng,
    private readonly bug: AcceptorBug | undefined,
    private readonly trace: (line: string) => void,
    /** Longest wait before a group WAL sync. */
    private readonly maxSyncDelay = 3,
  ) {
    this.acceptor = this.boot();
  }

  private boot(): Acceptor {
    return new Acceptor(new SimStorage(this, this.bug));
  }

  /** End of valid WAL in what the host can read now (the page cache), 0 when there is none. */
  walEnd(): bigint {
    const { records, end } = scanRecords(this.disk.visible.buf, this.disk.visible.len, BASE_LSN);
    return records.length === 0 ? 0n : end;
  }

  /** Records a crash would leave, by LSN → CRC (cached until durable WAL changes). */
  durableRecords(): { records: RecordInfo[]; byLsn: Map<bigint, number> } {
    if (this.scanCache?.version !== this.disk.durableVersion) {
      const { records } = scanRecords(this.disk.durable.buf, this.disk.durable.len, BASE_LSN);
      this.scanCache = { version: this.disk.durableVersion, records, byLsn: new Map(records.map((r) => [r.lsn, r.crc])) };
    }
    return this.scanCache;
  }

  onMessage(conn: Conn, msg: ToAcceptor): void {
    let session = this.sessions.get(conn);
    if (!session) {
      session = this.acceptor.newSession();
      this.sessions.set(conn, session);
    }
    try {
      this.handle(conn, session, msg);
    } catch (e) {
      if (!(e instanceof AcceptorError || e instanceof ProtocolError)) throw e;
      this.trace(`A${this.index} refuses on conn ${conn.id}: ${e.message}`);
      this.world.toProposer(conn, { kind: 'error', message: e.message });
      this.world.closeAfterReplies(conn);
    }
  }

  private handle(conn: Conn, session: AcceptorSession, msg: ToAcceptor): void {
    switch (msg.kind) {
      case 'greet': {
        const info = session.greet(decodeServerInfo(msg.bytes), this.walEnd());
        this.world.toProposer(conn, { kind: 'info', bytes: encodeSafeKeeperInfo(info) });
        return;
      }
      case 'vote': {
        const { granted, reply } = session.vote(decodeRequestVote(msg.bytes));
        this.world.toProposer(conn, { kind: 'voteReply', bytes: encodeNodeId(reply) });
        if (!granted) this.world.closeAfterReplies(conn);
        return;
      }
      case 'append': {
        const r = session.append(decodeSafeKeeperRequest(msg.bytes));
        if (r.kind === 'end') return this.world.closeAfterReplies(conn);
        if (this.bug === 'ack-before-sync') {
          this.world.toProposer(conn, { kind: 'response', bytes: encodeSafeKeeperResponse(r.response) });
          this.scheduleSync(false);
        } else {
          this.pendingAcks.push({ conn, response: r.response });
          this.scheduleSync(true);
        }
        return;
      }
      case 'read': {
        const end = this.walEnd();
        const len = end === 0n ? 0 : Number(end - BASE_LSN);
        this.world.toProposer(conn, { kind: 'wal', bytes: this.disk.visible.buf.slice(0, len) });
        return;
      }
    }
  }

  /** Group commit: one WAL sync a little later answers every append that arrived meanwhile. */
  private scheduleSync(answer: boolean): void {
    if (this.syncScheduled) return;
    this.syncScheduled = true;
    const inc = this.incarnation;
    this.world.after(this.rng.int(0, this.maxSyncDelay), () => {
      if (this.incarnation !== inc || !this.up) return;
      this.syncScheduled = false;
      this.disk.sync();
      this.checker.onAcceptorSynced(this);
      if (!answer && this.pendingAcks.length === 0) return;
      const acks = this.pendingAcks;
      this.pendingAcks = [];
      for (const a of acks) {
        if (a.conn.open) this.world.toProposer(a.conn, { kind: 'response', bytes: encodeSafeKeeperResponse(a.response) });
      }
    });
  }

  onClosed(conn: Conn): void {
    this.sessions.delete(conn);
    this.pendingAcks = this.pendingAcks.filter((a) => a.conn !== conn);
  }

  /** A network partition cuts this node off: its connections break, new ones fail. */
  isolate(): void {
    if (this.isolated) return;
    this.trace(`A${this.index} is cut off`);
    this.isolated = true;
    const conns = [...this.sessions.keys()];
    this.sessions.clear();
    this.pendingAcks = [];
    for (const c of conns) this.world.close(c);
  }

  reconnect(): void {
    if (!this.isolated) return;
    this.trace(`A${this.index} is reachable again`);
    this.isolated = false;
  }

  crash(): void {
    if (!this.up) return;
    this.trace(`A${this.index} crashes`);
    this.up = false;
    this.incarnation++;
    this.syncScheduled = false;
    this.pendingAcks = [];
    const conns = [...this.sessions.keys()];
    this.sessions.clear();
    for (const c of conns) this.world.close(c);
    this.disk.crash(this.rng);
    this.checker.onDurableChange();
    this.checker.onRestartState(this.index, this.disk.control);
  }

  restart(): void {
    if (this.up) return;
    this.acceptor = this.boot();
    this.up = true;
    this.trace(`A${this.index} restarts: epoch ${this.acceptor.state.epoch}, vote ${this.acceptor.state.server.nodeId.term}, WAL end ${this.walEnd()}`);
  }
}
