// Group commit: many WAL writes, one sync. Knows positions and sync rounds,
// nothing of the acceptor or of sessions.
//
// `written` is the end of the WAL written by this process, `synced` the
// position through which every write is durable. A sync started when
// `written` is W moves `synced` to W once it completes; writes that arrive
// while it runs are covered by the next single sync. request() starts a
// round unless one is running; syncNow() is the same round, blocking (the
// acceptor needs it before persisting a vote or an epoch switch). Both end
// in the same bookkeeping, completed(). A round of request() itself blocks
// when hooks.mayBlock() says so (timeline/sync-policy.ts).
import type { Lsn } from '../lsn.js';

/** The files a sync round flushes (storage/segments.ts WalSegments). */
export interface SyncableWal {
  /** Whether a sync would have anything to do. */
  readonly needsSync: boolean;
  /** Make every write done before the call durable, on the thread pool. */
  sync(): Promise<void>;
  /** sync(), blocking. */
  syncNow(): void;
}

export interface GroupCommitHooks {
  /** A sync round of `seconds` finished (`blocking`: it ran on the event loop): every write through `synced` is durable. */
  synced(synced: Lsn, seconds: number, blocking: boolean): void;
  /** Whether the next round, of about `bytes` written since the last, may run on the event loop rather than the thread pool (timeline/sync-policy.ts); default no. */
  mayBlock?(bytes: number): boolean;
  /** A sync failed: nothing more may become durable. Returns the error to throw. */
  failed(err: Error): Error;
  /** Whether syncing has stopped for good (the timeline failed). */
  halted(): boolean;
}

export class GroupCommit {
  /** The files rounds flush; undefined until the first write opens them. */
  wal: SyncableWal | undefined;
  private written: Lsn = 0n;
  private synced: Lsn = 0n;
  /** Highest position someone waits for (≥ written when a response covers WAL from before this process). */
  private wanted: Lsn = 0n;
  /** Bumped by a truncation: a round started before it no longer counts. */
  private gen = 0;
  private syncing: Promise<void> | undefined;

  constructor(private readonly hooks: GroupCommitHooks) {}

  get writtenLsn(): Lsn {
    return this.written;
  }

  get syncedLsn(): Lsn {
    return this.synced;
  }

  /** Everything through `end` is on disk and durable (the end of the WAL found at load). */
  reset(end: Lsn): void {
    this.written = this.synced = this.wanted = end;
  }

  /** WAL through `end` was written (not yet durable). */
  wrote(end: Lsn): void {
    if (end > this.written) this.written = end;
  }

  /** WAL from `lsn` on was discarded durably: everything below it is synced; a running round no longer counts. */
  truncated(lsn: Lsn): void {
    this.gen++;
    this.reset(lsn);
  }

  /** Ask that everything written so far (and at least `through`) becomes durable. */
  request(through: Lsn = 0n): void {
    if (through > this.wanted) this.wanted = through;
    if (this.syncing || this.hooks.halted()) return;
    if (this.target() <= this.synced && !this.wal?.needsSync) return;
    // A round that may block starts at the end of this event-loop turn (setImmediate runs after
    // the turn's socket reads), so that every append read in the turn shares its fdatasync; the
    // policy then decides on the round's real size.
    const deferred = this.wal !== undefined && (this.hooks.mayBlock?.(this.unsynced()) ?? false);
    const round = deferred ? new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.startRound(true)) : this.startRound(false);
    // Either way the round completes in a later microtask, after its fdatasync.
    this.syncing = round.then(
      (done) => {
        this.syncing = undefined;
        if (done) this.completed(done.target, done.gen, done.t0, done.blocking);
        if (this.written > this.synced || this.wanted > this.synced) this.request();
      },
      (err: Error) => {
        this.syncing = undefined;
        this.hooks.failed(err);
      },
    );
  }

  private target(): Lsn {
    return this.written > this.wanted ? this.written : this.wanted;
  }

  /** Bytes written and not yet durable. */
  private unsynced(): number {
    return this.written > this.synced ? Number(this.written - this.synced) : 0;
  }

  /** Sync now: the round covers every write made before this call. Null when the timeline failed meanwhile. */
  private async startRound(mayBlock: boolean): Promise<{ target: Lsn; gen: number; t0: number; blocking: boolean } | null> {
    if (this.hooks.halted()) return null;
    const target = this.target();
    const gen = this.gen;
    const t0 = performance.now();
    const blocking = mayBlock && (this.hooks.mayBlock?.(this.unsynced()) ?? false);
    if (this.wal) {
      if (blocking) this.wal.syncNow();
      else await this.wal.sync();
    }
    return { target, gen, t0, blocking };
  }

  /** Make everything written so far durable before returning (blocks the event loop). Throws what hooks.failed() returns. */
  syncNow(): void {
    const wal = this.wal;
    if (!wal) return;
    const target = this.written;
    const t0 = performance.now();
    try {
      wal.syncNow();
    } catch (err) {
      throw this.hooks.failed(err as Error);
    }
    this.completed(target, this.gen, t0, true);
  }

  /** Resolves once no round is running (all writes so far durable when it resolves unhalted). */
  async quiesce(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if (this.written > this.synced && !this.hooks.halted()) this.request();
      const s = this.syncing;
      if (!s) return;
      await s;
    }
  }

  private completed(target: Lsn, gen: number, t0: number, blocking: boolean): void {
    if (gen === this.gen && target > this.synced) this.synced = target;
    this.hooks.synced(this.synced, (performance.now() - t0) / 1000, blocking);
  }
}
