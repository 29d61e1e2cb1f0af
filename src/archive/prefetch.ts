// The prefetch worker of `walkeeper restore-wal` (see spool.ts): a detached
// process that fills the spool with the segments after the one just
// delivered.
import { mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from '../storage/fsutil.js';
import { declaredSegmentSize } from '../wal/verify-segment.js';
import { fetchWalFile, type WalFileSource } from './fetch.js';
import { followingSegments, LOCK, pidAlive, readLock, TEMP_MARK } from './spool.js';

export interface PrefetchWork {
  spool: string;
  /** The segment just delivered; the worker fetches the ones after it. */
  after: string;
  walSegSize: number;
  depth: number;
  sources: readonly WalFileSource[];
  /** Parallel fetches (default 4). */
  parallel?: number;
  noSync?: boolean;
}

/**
 * The worker: fetch the missing segments of the window into the spool, in
 * order of need, `parallel` at a time. One try each; it stops at the first
 * segment that is missing or fails (the foreground call will retry it and
 * report properly). Only one worker per spool runs at a time.
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
  try {
    const present = new Set(readdirSync(work.spool));
    const todo = followingSegments(work.after, work.walSegSize, work.depth).filter((n) => !present.has(n));
    let stop = false;
    let fetched = 0;
    const next = async (): Promise<void> => {
      while (!stop && todo.length > 0) {
        const name = todo.shift()!;
        let outcome;
        try {
          outcome = await fetchWalFile(name, work.sources, { attempts: 1 });
        } catch {
          stop = true;
          return;
        }
        if (outcome.kind === 'missing') {
          stop = true;
          return;
        }
        if (declaredSegmentSize(name, outcome.bytes) !== work.walSegSize) {
          stop = true;
          return;
        }
        await writeFileDurably(join(work.spool, name), outcome.bytes, { tempPath: join(work.spool, `${name}${TEMP_MARK}${process.pid}`), noSync: work.noSync });
        fetched++;
      }
    };
    await Promise.all(Array.from({ length: work.parallel ?? 4 }, next));
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
