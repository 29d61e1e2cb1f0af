// Who is attached to a timeline: the WAL push sessions the admin API lists,
// and the listeners told about its durability progress (the push sessions,
// which send the responses a sync covers, and the replication side, which
// wakes its waiting senders).
import type { Lsn } from '../lsn.js';

/** A WAL push session attached to a timeline, as the admin API shows it. */
export interface PushSessionView {
  /** The proposer's address, "host:port". */
  readonly address: string;
  readonly since: Date;
  /** WAL requests received (the end-of-stream request not counted). */
  readonly appends: number;
  /** WAL bytes received. */
  readonly walBytes: number;
  /** End the session with a FATAL error carrying `message`. */
  disconnect(message: string): void;
}

/** Told about durability progress; implemented by WAL push sessions. */
export interface DurabilityListener {
  /** Every write up to `synced` is durable. */
  durable(synced: Lsn): void;
  /** WAL from `lsn` on was discarded (a newer proposer rewrote it). */
  truncated(lsn: Lsn): void;
  /** The timeline failed (I/O error); nothing more will become durable. */
  failed(err: Error): void;
  /** A proposer reported a higher commit_lsn (also when no WAL moved). */
  committed?(commitLsn: Lsn): void;
  /** The WAL moved to PostgreSQL timeline `tli`, which forked at `switchLsn` (persisted). */
  pgTimelineChanged?(tli: number, switchLsn: Lsn): void;
}

/** The listeners of one timeline; each event goes to those subscribed when it happens. */
export class DurabilityListeners {
  private readonly listeners = new Set<DurabilityListener>();

  /** Subscribe `l`; the returned function unsubscribes it. */
  add(l: DurabilityListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  // A listener may unsubscribe (or subscribe another) while it is told: each event goes to a copy of the set.
  durable(synced: Lsn): void {
    for (const l of [...this.listeners]) l.durable(synced);
  }

  truncated(lsn: Lsn): void {
    for (const l of [...this.listeners]) l.truncated(lsn);
  }

  failed(err: Error): void {
    for (const l of [...this.listeners]) l.failed(err);
  }

  committed(commitLsn: Lsn): void {
    for (const l of [...this.listeners]) l.committed?.(commitLsn);
  }

  pgTimelineChanged(tli: number, switchLsn: Lsn): void {
    for (const l of [...this.listeners]) l.pgTimelineChanged?.(tli, switchLsn);
  }
}
