// The data directory lock: `<data dir>/safekeeper.pid` holds the owner's
// pid. A live holder is refused; a stale file (its process is gone) is taken
// over. Released on a clean stop.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const LOCK_FILE = 'safekeeper.pid';

export class LockHeldError extends Error {
  constructor(
    readonly dir: string,
    readonly holderPid: number,
  ) {
    super(`data directory ${dir} is in use by another walkeeper (pid ${holderPid}); stop it first`);
    this.name = 'LockHeldError';
  }
}

/** Whether `pid` names a running process that could be a walkeeper. */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPERM') return true;
    return false;
  }
  // A reused pid that now belongs to something else is not a holder.
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    if (cmd.length > 0 && !/node|walkeeper/.test(cmd)) return false;
  } catch {
    /* no /proc: trust kill(0) */
  }
  return true;
}

function readPid(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const pid = Number.parseInt(text.trim().split(/\s+/)[0] ?? '', 10);
  return Number.isFinite(pid) ? pid : 0;
}

export class DataDirLock {
  private released = false;

  private constructor(
    readonly dir: string,
    readonly path: string,
    /** pid of a stale holder this lock replaced, if any. */
    readonly tookOverFrom: number | null,
  ) {}

  /** Take the lock or throw LockHeldError (or the fs error, e.g. EACCES/EROFS/ENOENT). */
  static acquire(dir: string): DataDirLock {
    const path = join(dir, LOCK_FILE);
    let stale: number | null = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      let fd: number;
      try {
        fd = openSync(path, 'wx', 0o644);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = readPid(path);
        if (holder === null) continue; // vanished meanwhile: try again
        if (holder === process.pid || processAlive(holder)) throw new LockHeldError(dir, holder);
        stale = holder;
        try {
          unlinkSync(path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
        continue;
      }
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      // Another starter may have removed our fresh file as "stale" in a race; check we still hold it.
      if (readPid(path) !== process.pid) continue;
      return new DataDirLock(dir, path, stale);
    }
    const holder = readPid(path) ?? 0;
    throw new LockHeldError(dir, holder);
  }

  /** Remove the lock file if it is still ours. */
  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      if (readPid(this.path) === process.pid) unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}
