// Retry timing shared by the safekeeper links and the primary stream.

/** Exponential backoff from `minMs` to `maxMs` with ±20 % jitter, for the `failures`-th failure in a row. */
export function backoffMs(failures: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(20, Math.max(0, failures - 1)));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** A sleep that stopping cuts short, so shutdown never waits out a backoff. */
export class InterruptibleSleep {
  private pending: { timer: NodeJS.Timeout; wake: () => void } | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending = null;
        resolve();
      }, ms);
      this.pending = { timer, wake: resolve };
    });
  }

  wake(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    clearTimeout(p.timer);
    p.wake();
  }
}
