// The prefetch worker of `walkeeper restore-wal` (see spool.ts): a detached
// process that fills the spool with the segments after the one just
// delivered.
import { mkdirSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from '../storage/fsutil.js';
import { declaredSegmentSize, walFileKind } from '../wal/verify-segment.js';
import { fetchWalFile, type WalFileSource } from './fetch.js';
import { followingSegments, LOCK, pidAlive, readDelivered, readLock, TEMP_MARK } from './spool.js';

export interface PrefetchWork {
  spool: string;
  /** The segment just delivered; the worker fetches the ones after it. */
  after: string;
  walSegSize: number;
  depth: number;
  sources: readonly WalFileSource[];
  /** Parallel fetches (default 2: decoding and checksums are CPU-bound, and the next segment is needed first). */
  parallel?: number;
  noSync?: boolean;
}

/** How long a worker with nothing to fetch waits for PostgreSQL to ask for more before it exits. */
const IDLE_MS = 10_000;
const POLL_MS = 25;

/**
 * The worker: keep the `depth` segments after the last one delivered (the
 * spool's `delivered` marker, written by each restore-wal call) in the
 * spool, in order of need, `parallel` at a time. One try each; it stops at
 * the first segment that is missing or fails (the foreground call will
 * retry it and report properly), when the marker moves to another timeline
 * or backwards, and after IDLE_MS without progress (emptying the spool). Only one worker per spool runs.
 */
export async function runPrefetchWorker(work: PrefetchWork): Promise<number> {
  mkdirSync(work.spool, { recursive: true, mode: 0o700 });
  const lock = join(work.spool, LOCK);
  try {
    writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
  } catch {
    if (pidAlive(readLock(work.spool))) return 0;
    writeFileSync(lock, String(process.pid), { mode: 0o600 });
  }
  const timeline = work.after.slice(0, 8);
  let after = work.after;
  let idleSince = Date.now();
  let fetched = 0;
  try {
    for (;;) {
      const delivered = readDelivered(work.spool);
      // Another timeline, or PostgreSQL started over further back (a restart): leave it to a new worker.
      if (delivered !== null && (delivered.slice(0, 8) !== timeline || delivered < after)) break;
      if (delivered !== null && delivered > after) {
        after = delivered;
        idleSince = Date.now();
      }
      const present = new Set(readdirSync(work.spool));
      const todo = followingSegments(after, work.walSegSize, work.depth).filter((n) => !present.has(n));
      if (todo.length === 0) {
        if (Date.now() - idleSince > IDLE_MS) {
          // PostgreSQL has stopped asking (recovery ended, or a standby waits for
          // WAL not archived yet): leave no segments behind in its pg_wal.
          for (const n of present) if (walFileKind(n) === 'segment') rmSync(join(work.spool, n), { force: true });
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        continue;
      }
      const got = await fetchAll(work, todo);
      fetched += got;
      if (got < todo.length) break;
    }
    return fetched;
  } finally {
    if (readLock(work.spool) === process.pid) {
      try {
        unlinkSync(lock);
      } catch {
        /* tidied away meanwhile */
      }
    }
  }
}

/** Fetch `names` into the spool; how many arrived before the first one missing or failing. */
async function fetchAll(work: PrefetchWork, names: readonly string[]): Promise<number> {
  const todo = [...names];
  let stop = false;
  let fetched = 0;
  const next = async (): Promise<void> => {
    while (!stop && todo.length > 0) {
      const name = todo.shift()!;
      let outcome;
      try {
        outcome = await fetchWalFile(name, work.sources, { attempts: 1 });
      } catch {
        outcome = null;
      }
      if (outcome === null || outcome.kind === 'missing' || declaredSegmentSize(name, outcome.bytes) !== work.walSegSize) {
        stop = true;
        return;
      }
      await writeFileDurably(join(work.spool, name), outcome.bytes, { tempPath: join(work.spool, `${name}${TEMP_MARK}${process.pid}`), noSync: work.noSync });
      fetched++;
    }
  };
  await Promise.all(Array.from({ length: work.parallel ?? 2 }, next));
  return fetched;
}
