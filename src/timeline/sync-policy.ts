// Where a timeline's sync round runs: on the event loop (blocking, as
// PostgreSQL's walreceiver and pg_receivewal do) or on libuv's thread pool.
//
// Handing an fdatasync to the thread pool costs a wake-up of a worker and of
// the event loop afterwards: about a quarter of a safekeeper's CPU per sync
// round (docs/performance.md §12.9). Blocking is only fair while nothing
// else needs the event loop for long, so a round blocks only when
//  * it is small (at most BLOCKING_MAX_BYTES written since the last round:
//    commits; in bulk ingest or catch-up, reading the next batch while the
//    thread pool syncs this one is worth more than the hand-off), and
//  * no other timeline of this daemon synced within ACTIVE_WINDOW_MS (one
//    busy timeline: its own WAL push waits for the sync anyway; readers and
//    HTTP wait at most one sync), and
//  * its blocking rounds are fast: one slower than SLOW_BLOCKING_SYNC_MS (a
//    slow or busy disk) sends this timeline's rounds to the thread pool for
//    POOL_AFTER_SLOW_MS.
// Durability does not depend on the choice: the round completes (and
// acknowledgements follow) after the fdatasync either way.

/** Larger rounds use the thread pool. */
export const BLOCKING_MAX_BYTES = 64 * 1024;
/** Another timeline's sync within this window means the daemon serves several busy timelines. */
export const ACTIVE_WINDOW_MS = 1000;
/** A blocking round slower than this held up the event loop too long. */
export const SLOW_BLOCKING_SYNC_MS = 20;
/** After one, this timeline's rounds use the thread pool this long. */
export const POOL_AFTER_SLOW_MS = 10_000;

export class SyncPolicy {
  /** When each timeline last finished a round, by name (only those within ACTIVE_WINDOW_MS matter). */
  private readonly lastSync = new Map<string, number>();
  /** Until when a timeline's rounds use the thread pool after a slow blocking one. */
  private readonly poolUntil = new Map<string, number>();
  readonly stats = { blocking: 0, pool: 0, slowBlocking: 0 };

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Whether timeline `name`'s next round, of about `bytes` written since its last, may block the event loop. */
  mayBlock(name: string, bytes: number): boolean {
    if (bytes > BLOCKING_MAX_BYTES) return false;
    const now = this.now();
    const until = this.poolUntil.get(name);
    if (until !== undefined) {
      if (now < until) return false;
      this.poolUntil.delete(name);
    }
    for (const [other, at] of this.lastSync) {
      if (now - at > ACTIVE_WINDOW_MS) this.lastSync.delete(other);
      else if (other !== name) return false;
    }
    return true;
  }

  /** Timeline `name` finished a round of `ms`, blocking or not. */
  synced(name: string, ms: number, blocking: boolean): void {
    const now = this.now();
    this.lastSync.set(name, now);
    if (!blocking) {
      this.stats.pool++;
      return;
    }
    this.stats.blocking++;
    if (ms > SLOW_BLOCKING_SYNC_MS) {
      this.stats.slowBlocking++;
      this.poolUntil.set(name, now + POOL_AFTER_SLOW_MS);
    }
  }
}
