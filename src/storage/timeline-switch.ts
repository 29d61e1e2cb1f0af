// The first segment of a new PostgreSQL timeline: when the switch point is
// inside a segment, the new timeline's file of that segment starts with a
// copy of the parent's bytes before the switch point, as PostgreSQL writes
// it at promotion. The parent's file stays where it is, `.partial`.
import { closeSync, existsSync, openSync, readSync, renameSync, unlinkSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { PARTIAL_SUFFIX, segmentFileNamesToTry } from '../wal/segment-files.js';
import { fsyncDirSync, writeFullySync } from './fsutil.js';

/**
 * Make `<to>.partial`: `length` bytes copied from the file of segment
 * `from` (`.partial` first), zeros to the segment size. Durable (temp file,
 * fsync, rename, directory fsync) before returning; replaces a file left by
 * an earlier attempt. False when the parent has no file of the segment.
 */
export function copySegmentPrefix(dir: string, walSegSize: number, from: string, to: string, length: number, opts: { noSync?: boolean } = {}): boolean {
  const prefix = readPrefix(dir, from, length);
  if (!prefix) return false;
  const segment = Buffer.alloc(walSegSize);
  prefix.copy(segment);
  const temp = join(dir, to + PARTIAL_SUFFIX + '.tmp');
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeFullySync(fd, segment, 0);
    if (!opts.noSync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, join(dir, to + PARTIAL_SUFFIX));
  // A complete file of that name (not read while the `.partial` exists) would come back after a later truncation.
  if (existsSync(join(dir, to))) unlinkSync(join(dir, to));
  if (!opts.noSync) fsyncDirSync(dir);
  return true;
}

function readPrefix(dir: string, name: string, length: number): Buffer | null {
  for (const file of segmentFileNamesToTry(name)) {
    let fd: number;
    try {
      fd = openSync(join(dir, file), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    try {
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, got);
        if (n === 0) break;
        got += n;
      }
      return buf;
    } finally {
      closeSync(fd);
    }
  }
  return null;
}
