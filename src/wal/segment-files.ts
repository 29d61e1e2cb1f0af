// The one rule for reading a directory of WAL segment files: a segment may
// be present both as `<name>` and as `<name>.partial` (a crash between a
// writer's rename steps, a truncation, pg_receivewal's own habits), and then
// the `.partial` is the file to read, as PostgreSQL's tools do. Every reader
// of a segment directory (the end-of-WAL scan, the walsender's file reads,
// the safekeeper's own segment store) picks files through here.
import { readdirSync } from 'node:fs';
import { parseSegmentFileName } from '../lsn.js';

export const PARTIAL_SUFFIX = '.partial';

/** A segment file found in a directory. */
export interface SegmentFileEntry {
  file: string;
  segno: bigint;
  partial: boolean;
  timeline: number;
}

/** Segment files present in `dir`, with their segment numbers (anything else is ignored). */
export function listSegmentFiles(dir: string, walSegSize: number): SegmentFileEntry[] {
  const out: SegmentFileEntry[] = [];
  for (const f of readdirSync(dir)) {
    const p = parseSegmentFileName(f, walSegSize);
    if (p) out.push({ file: f, segno: p.segno, partial: p.partial, timeline: p.timeline });
  }
  return out;
}

/** Of two files holding the same segment, the one to read: the `.partial` when there is one. */
export function preferredSegmentFile<T extends { partial: boolean }>(a: T, b: T): T {
  return b.partial && !a.partial ? b : a;
}

/** The file to read for each segment, by `keyOf` (the segment number, or the name without `.partial`). */
export function segmentFilesToRead<K, T extends { partial: boolean }>(files: Iterable<T>, keyOf: (f: T) => K): Map<K, T> {
  const chosen = new Map<K, T>();
  for (const f of files) {
    const key = keyOf(f);
    const seen = chosen.get(key);
    chosen.set(key, seen ? preferredSegmentFile(seen, f) : f);
  }
  return chosen;
}

/**
 * File names to try, in order, when opening the segment called `name`
 * without listing the directory: `.partial` first, then the full name, then
 * `.partial` once more, which catches a segment renamed back to `.partial`
 * (a truncation) between the first two attempts.
 */
export function segmentFileNamesToTry(name: string): readonly [string, string, string] {
  const partial = name + PARTIAL_SUFFIX;
  return [partial, name, partial];
}
