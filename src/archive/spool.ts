// The prefetch spool of `walkeeper restore-wal`. PostgreSQL runs
// restore_command once per segment, one after the other, so each call pays
// a process start and a round trip. After delivering segment N, a detached
// worker fetches N+1 … N+depth into `<dir of %p>/.walkeeper-prefetch/
// <tenant>-<timeline>/`, and the next calls only rename a file.
//
// A spool file is written only after the same checks as a direct fetch
// (checksum, page header), to a temporary name, fsynced and renamed; it is
// checked again (size and first page) before it is used, and dropped when
// that fails. The spool holds at most `depth` segments ahead of the last
// one asked for, only of this tenant and timeline: anything else found in
// it is removed.
//
// This module is on the path of every restore-wal call, so it stays light:
// the worker itself (which fetches) is in prefetch.ts.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseSegmentFileName, segmentFileName, XLOG_BLCKSZ } from '../lsn.js';
import { fsyncDirSync } from '../storage/fsutil.js';
import { declaredSegmentSize, verifySegmentHead, walFileKind, WalFileCheckError } from '../wal/verify-segment.js';

export const SPOOL_DIR = '.walkeeper-prefetch';
export const LOCK = 'worker.pid';
export const TEMP_MARK = '.tmp-';
/** The last segment a restore-wal call delivered: how far ahead the worker fetches. */
export const DELIVERED = 'delivered';

/** The spool of one tenant/timeline, next to PostgreSQL's target path. */
export function spoolDirFor(targetPath: string, tenantId: string, timelineId: string): string {
  return join(dirname(targetPath), SPOOL_DIR, `${tenantId}-${timelineId}`);
}

/**
 * Move a spooled `name` to `target` if there is one that still checks out
 * (a bad one is removed). The segment size when `target` now holds it, else null.
 */
export function takeFromSpool(spool: string, name: string, target: string): number | null {
  if (walFileKind(name) !== 'segment') return null;
  const path = join(spool, name);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  let size: number | null = null;
  try {
    const head = Buffer.alloc(XLOG_BLCKSZ);
    const n = readSync(fd, head, 0, head.length, 0);
    verifySegmentHead(name, head.subarray(0, n), fstatSync(fd).size);
    size = declaredSegmentSize(name, head);
  } catch (err) {
    if (!(err instanceof WalFileCheckError)) throw err;
  } finally {
    closeSync(fd);
  }
  if (size === null) {
    rmSync(path, { force: true });
    return null;
  }
  renameSync(path, target);
  fsyncDirSync(dirname(target));
  return size;
}

/** The `depth` segment names after `name` (same timeline), given the segment size. */
export function followingSegments(name: string, walSegSize: number, depth: number): string[] {
  const parsed = parseSegmentFileName(name, walSegSize);
  if (!parsed || parsed.partial) return [];
  return Array.from({ length: depth }, (_, i) => segmentFileName(parsed.timeline, parsed.segno + BigInt(i + 1), walSegSize));
}

export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readLock(spool: string): number {
  try {
    const fd = openSync(join(spool, LOCK), 'r');
    try {
      const buf = Buffer.alloc(32);
      return Number(buf.toString('utf8', 0, readSync(fd, buf, 0, 32, 0)).trim());
    } finally {
      closeSync(fd);
    }
  } catch {
    return 0;
  }
}

/**
 * When a running worker is writing `name` right now, wait for it (up to
 * `timeoutMs`) rather than fetch the same bytes again beside it.
 */
export async function awaitWorker(spool: string, name: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = readLock(spool);
    if (!pidAlive(pid) || !existsSync(join(spool, `${name}${TEMP_MARK}${pid}`)) || Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Tell a running worker which segment PostgreSQL has now (no fsync: a hint, lost harmlessly). */
export function markDelivered(spool: string, name: string): void {
  mkdirSync(spool, { recursive: true, mode: 0o700 });
  writeFileSync(join(spool, `${DELIVERED}${TEMP_MARK}${process.pid}`), name);
  renameSync(join(spool, `${DELIVERED}${TEMP_MARK}${process.pid}`), join(spool, DELIVERED));
}

export function readDelivered(spool: string): string | null {
  try {
    const name = readFileSync(join(spool, DELIVERED), 'utf8');
    return walFileKind(name) === 'segment' ? name : null;
  } catch {
    return null;
  }
}

/**
 * Trim the spool to the window after `delivered` (other tenants' and
 * timelines' spools, older segments and a dead worker's temporary files
 * go) and say how many wanted segments are missing from it and whether a
 * worker is running.
 */
export function tidySpool(spool: string, wanted: readonly string[]): { missing: number; workerRunning: boolean } {
  const root = dirname(spool);
  try {
    for (const other of readdirSync(root)) if (join(root, other) !== spool) rmSync(join(root, other), { recursive: true, force: true });
  } catch {
    /* no spool yet */
  }
  const workerRunning = pidAlive(readLock(spool));
  const keep = new Set(wanted);
  let present = 0;
  let names: string[] = [];
  try {
    names = readdirSync(spool);
  } catch {
    /* none yet */
  }
  for (const n of names) {
    if (n === LOCK || n === DELIVERED) continue;
    if (keep.has(n)) {
      present++;
      continue;
    }
    const temp = n.indexOf(TEMP_MARK);
    if (temp >= 0 && workerRunning && Number(n.slice(temp + TEMP_MARK.length)) === readLock(spool)) continue;
    rmSync(join(spool, n), { force: true });
  }
  return { missing: wanted.length - present, workerRunning };
}

/** Start a detached worker (`argv` re-runs restore-wal with --prefetch-worker); it outlives this process. */
export function startPrefetchWorker(argv: readonly string[]): void {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv], { detached: true, stdio: 'ignore' });
  child.on('error', () => {
    /* prefetch is an optimisation: a failed start only costs speed */
  });
  child.unref();
}

