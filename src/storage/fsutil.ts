// Small durable-filesystem helpers: fsync of directories, atomic durable
// file replacement, durable directory creation. Every durability point of
// the daemon goes through src/storage/, most of them through here.
import { closeSync, fdatasync, fsync, fsyncSync, mkdirSync, open, openSync, renameSync, write, writeSync, existsSync } from 'node:fs';
import { open as openFile, rename as renameFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsync a directory, so that entries created, renamed or removed in it are durable. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync on the thread pool. */
export function fsyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Write all of `bytes` at `position` (loops over short writes). */
export function writeFullySync(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const n = writeSync(fd, bytes, done, bytes.length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += n;
  }
}

/** fdatasync on the thread pool. */
export function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** open() on the thread pool. */
export function openAsync(path: string, flags: string, mode: number): Promise<number> {
  return new Promise((resolve, reject) => open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** writeFullySync on the thread pool, one write at a time. */
export async function writeFullyAsync(fd: number, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const n = await new Promise<number>((resolve, reject) =>
      write(fd, bytes, done, bytes.length - done, position + done, (err, written) => (err ? reject(err) : resolve(written))),
    );
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += n;
  }
}

export interface DurableWriteOptions {
  /** Skip the fsyncs (the rename is still atomic). */
  noSync?: boolean;
  /** Temporary file name; default `<path>.partial`. */
  tempPath?: string;
  mode?: number;
}

/**
 * Replace `path` with `bytes` atomically and durably: write a temp file,
 * fsync it, rename it over `path`, fsync the directory.
 */
export function writeFileDurableSync(path: string, bytes: Uint8Array, opts: DurableWriteOptions = {}): void {
  const temp = opts.tempPath ?? `${path}.partial`;
  const fd = openSync(temp, 'w', opts.mode ?? 0o600);
  try {
    writeFullySync(fd, bytes, 0);
    if (!opts.noSync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  if (!opts.noSync) fsyncDirSync(dirname(path));
}

/**
 * Create `dir` and any missing parents, fsyncing each parent that got a new
 * entry, so the directory survives a crash. Returns true when it was created.
 */
export function mkdirDurableSync(dir: string, opts: { noSync?: boolean; mode?: number } = {}): boolean {
  if (existsSync(dir)) return false;
  const parent = dirname(dir);
  if (parent !== dir) mkdirDurableSync(parent, opts);
  try {
    mkdirSync(dir, { mode: opts.mode ?? 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  if (!opts.noSync) fsyncDirSync(parent);
  return true;
}

/**
 * writeFileDurableSync off the event loop: temp file, fsync, rename, fsync of
 * the directory. Used for files large enough that a synchronous write would
 * stall the daemon (archived WAL segments).
 */
export async function writeFileDurably(path: string, bytes: Uint8Array, opts: DurableWriteOptions = {}): Promise<void> {
  const temp = opts.tempPath ?? `${path}.partial`;
  const fh = await openFile(temp, 'w', opts.mode ?? 0o600);
  try {
    await fh.writeFile(bytes);
    if (!opts.noSync) await fh.sync();
  } finally {
    await fh.close();
  }
  await renameFile(temp, path);
  if (!opts.noSync) {
    const dir = await openFile(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
