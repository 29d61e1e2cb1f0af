// Helpers shared across tests that need neither PostgreSQL nor a daemon:
// seeded random numbers (so a failing case replays from its seed), waiting
// for a condition with a deadline (instead of a fixed sleep), temp dirs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A seeded PRNG (mulberry32): numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded PRNG (xorshift32): numbers in [0, 1). The daemon and replication tests' inputs come from it. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `probe` until `ok` accepts its value, and returns that value; a probe
 * that throws counts as not yet. Past the deadline, throws naming `what`, the
 * last value and the last error.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)}${lastErr ? `, error: ${(lastErr as Error).message}` : ''})`);
    }
    await sleep(everyMs);
  }
}

/** Polls `condition` until it holds (see waitFor). */
export async function until(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 60_000, everyMs = 100): Promise<void> {
  await waitFor(what, condition, (v) => v, timeoutMs, everyMs);
}

/** A fresh directory under the system temp dir, removed when the test ends. */
export function tempDir(t: { teardown(fn: () => unknown): void }, prefix = 'wk-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
