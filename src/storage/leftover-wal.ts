// Load-time care of a timeline directory's segment files, before they are
// opened for writing: make durable what a previous process left unsynced,
// and give complete names to `.partial` segments the WAL has wholly passed.
import { closeSync, fsyncSync, openSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { segmentStart, type Lsn } from '../lsn.js';
import { listSegmentFiles, PARTIAL_SUFFIX as PARTIAL } from '../wal/segment-files.js';
import type { TimelineAncestry } from '../wal/timeline-files.js';
import { fsyncDirSync } from './fsutil.js';

/**
 * Make durable whatever WAL a previous process left in the page cache of
 * `dir` (it may have died before syncing): every `.partial` segment and the
 * highest one, then the directory. Run before the segments are opened.
 */
export function syncLeftoverWal(dir: string, walSegSize: number): void {
  const files = listSegmentFiles(dir, walSegSize);
  const highest = files.reduce((m, f) => (f.segno > m ? f.segno : m), -1n);
  for (const f of files) {
    if (!f.partial && f.segno !== highest) continue;
    const fd = openSync(join(dir, f.file), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  fsyncDirSync(dir);
}

/**
 * Give every `.partial` segment that the WAL has wholly passed (it ends at
 * or below `walEnd`, the end of valid WAL found at load) its complete name,
 * durably. A process that died after writing a segment's last byte but
 * before renaming it would otherwise leave it `.partial` for good, and the
 * archive, which takes complete segments only, would stop there. Only the
 * files `ancestry` reads are renamed. Run before
 * the segments are opened. Returns the names given.
 */
export function completePassedSegments(dir: string, ancestry: TimelineAncestry, walSegSize: number, walEnd: Lsn, noSync: boolean): string[] {
  // Where both names exist the `.partial` is the one read (wal/segment-files.ts), so it replaces the other.
  // A parent timeline's file of a switch segment is not the timeline's: it stays `.partial`.
  const renamed: string[] = [];
  for (const f of listSegmentFiles(dir, walSegSize)) {
    if (!f.partial || f.timeline !== ancestry.timelineOfSegment(f.segno, walSegSize) || segmentStart(f.segno + 1n, walSegSize) > walEnd) continue;
    const name = f.file.slice(0, -PARTIAL.length);
    renameSync(join(dir, f.file), join(dir, name));
    renamed.push(name);
  }
  if (renamed.length > 0 && !noSync) fsyncDirSync(dir);
  return renamed;
}
