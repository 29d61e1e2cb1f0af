// The simulated world: a virtual clock with an event queue, and TCP-like
// connections between proposers and acceptor nodes (in order per
// direction, random delays, broken at random, broken by crashes).
import type { Prng } from './prng.js';

/** What travels over a connection (one protocol message, encoded, per CopyData). */
export type ToAcceptor =
  | { kind: 'greet' | 'vote' | 'append'; bytes: Uint8Array }
  /** The recovery read (START_REPLICATION by the proposer): all WAL up to the end. */
  | { kind: 'read' };
export type ToProposer =
  | { kind: 'info' | 'voteReply' | 'response'; bytes: Uint8Array }
  | { kind: 'wal'; bytes: Uint8Array }
  | { kind: 'error'; message: string };

export interface ConnEnd<In> {
  onMessage(conn: Conn, msg: In): void;
  onClosed(conn: Conn): void;
}

export interface NodeEnd extends ConnEnd<ToAcceptor> {
  readonly up: boolean;
  /** Cut off by a network partition: up, but unreachable. */
  readonly isolated: boolean;
  readonly incarnation: number;
}

export class Conn {
  open = true;
  /** No more sends accepted from the acceptor side; closes once its last reply is delivered. */
  closing = false;
  lastToNode = 0;
  lastToProposer = 0;

  constructor(
    readonly id: number,
    readonly proposer: ConnEnd<ToProposer>,
    readonly node: NodeEnd,
    readonly nodeIndex: number,
    readonly incarnation: number,
  ) {}
}

interface Event {
  time: number;
  seq: number;
  run: () => void;
}

export interface NetConfig {
  minDelay: number;
  maxDelay: number;
  /** Chance that a message breaks its connection instead of arriving. */
  breakChance: number;
}

export class World {
  now = 0;
  private seq = 0;
  private heap: Event[] = [];
  private connIds = 0;
  events = 0;
  /** Called after every event (the invariant checker). */
  afterEvent: () => void = () => {};

  constructor(
    readonly rng: Prng,
    readonly net: NetConfig,
  ) {}

  at(time: number, run: () => void): void {
    const ev = { time: Math.max(time, this.now), seq: this.seq++, run };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(ev, h[parent])) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = ev;
  }

  after(delay: number, run: () => void): void {
    this.at(this.now + delay, run);
  }

  /** Run events until the clock passes `until`. */
  run(until: number): void {
    while (this.heap.length > 0 && this.heap[0].time <= until) {
      const ev = this.pop();
      this.now = ev.time;
      this.events++;
      ev.run();
      this.afterEvent();
    }
    this.now = until;
  }

  private pop(): Event {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && before(h[r], h[l]) ? r : l;
        if (!before(h[c], last)) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  private delay(): number {
    return this.rng.int(this.net.minDelay, this.net.maxDelay);
  }

  connect(proposer: ConnEnd<ToProposer>, node: NodeEnd, nodeIndex: number): Conn {
    const conn = new Conn(++this.connIds, proposer, node, nodeIndex, node.incarnation);
    if (!node.up || node.isolated) {
      conn.open = false;
      this.after(this.delay(), () => proposer.onClosed(conn));
    }
    return conn;
  }

  toNode(conn: Conn, msg: ToAcceptor): void {
    if (!conn.open || conn.closing) return;
    if (this.rng.chance(this.net.breakChance)) return this.close(conn);
    const t = Math.max(conn.lastToNode, this.now + this.delay());
    conn.lastToNode = t;
    this.at(t, () => {
      if (!conn.open) return;
      // A node that crashed since the connection was made resets it.
      if (!conn.node.up || conn.node.isolated || conn.node.incarnation !== conn.incarnation) return this.close(conn);
      conn.node.onMessage(conn, msg);
    });
  }

  toProposer(conn: Conn, msg: ToProposer): void {
    if (!conn.open) return;
    if (this.rng.chance(this.net.breakChance)) return this.close(conn);
    const t = Math.max(conn.lastToProposer, this.now + this.delay());
    conn.lastToProposer = t;
    this.at(t, () => {
      if (conn.open) conn.proposer.onMessage(conn, msg);
    });
  }

  /** The acceptor ends the connection after its last reply has been delivered. */
  closeAfterReplies(conn: Conn): void {
    if (!conn.open || conn.closing) return;
    conn.closing = true;
    this.at(conn.lastToProposer + 1, () => this.close(conn));
  }

  /** Break the connection now: undelivered messages are lost; both ends hear of it. */
  close(conn: Conn): void {
    if (!conn.open) return;
    conn.open = false;
    conn.node.onClosed(conn);
    this.after(this.delay(), () => conn.proposer.onClosed(conn));
  }
}

function before(a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
