// A WAL position that others can wait on without polling: the append path
// moves it, and every waiter whose target it passed is woken at once.
import type { Lsn } from '../lsn.js';

interface Waiter {
  target: Lsn;
  resolve: () => void;
}

export class LsnWatch {
  private current: Lsn;
  private readonly waiters = new Set<Waiter>();

  constructor(initial: Lsn = 0n) {
    this.current = initial;
  }

  get value(): Lsn {
    return this.current;
  }

  /** Number of pending waiters (for tests and metrics). */
  get waiting(): number {
    return this.waiters.size;
  }

  /** Move forward; a smaller value is ignored. Wakes the waiters it passes. */
  advance(lsn: Lsn): void {
    if (lsn > this.current) this.set(lsn);
  }

  /** Set to any value (also backwards, e.g. after a truncation); wakes the waiters it passes. */
  set(lsn: Lsn): void {
    this.current = lsn;
    for (const w of this.waiters) {
      if (lsn > w.target) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** Wake every waiter, whatever its target (what it waits for may have changed: a timeline switch). */
  wakeAll(): void {
    const all = [...this.waiters];
    this.waiters.clear();
    for (const w of all) w.resolve();
  }

  /**
   * Resolves once the position is greater than `lsn` (at once if it is
   * already), or when `signal` aborts. Never rejects; an aborted wait leaves
   * nothing behind.
   */
  waitPast(lsn: Lsn, signal?: AbortSignal): Promise<void> {
    if (this.current > lsn || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const onAbort = (): void => {
        this.waiters.delete(waiter);
        resolve();
      };
      const waiter: Waiter = {
        target: lsn,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
