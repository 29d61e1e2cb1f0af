// A directory of WAL segment files (pg_wal, a pg_receivewal target, or a
// safekeeper timeline directory): which timeline to read, the segment size,
// and which file holds each segment (wal/segment-files.ts: .partial preferred).
import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isValidWalSegSize, parseSegmentFileName, segmentFileName, XLOG_BLCKSZ } from '../lsn.js';
import { WalDirError } from './errors.js';
import { PARTIAL_SUFFIX, segmentFilesToRead } from './segment-files.js';
import type { TimelineAncestry } from './timeline-files.js';

const SEGMENT_LIKE = /^([0-9A-F]{8})[0-9A-F]{16}(\.partial)?$/;
const KNOWN_MAGICS = new Set([0xd106, 0xd10d, 0xd110, 0xd113, 0xd116]);
const XLP_LONG_HEADER = 0x0002;
const LONG_HEADER_SIZE = 40;

export interface WalSegmentFile {
  name: string;
  path: string;
  segno: bigint;
  partial: boolean;
}

export interface WalDirOptions {
  /** Segment size in bytes; read from the first segment's long page header when absent. */
  walSegSize?: number;
  /** Timeline to read; the highest present when absent. */
  timeline?: number;
  /**
   * Read a timeline with its ancestors: each segment from the file the
   * ancestry picks (wal/timeline-files.ts). Overrides `timeline`.
   */
  ancestry?: TimelineAncestry;
}

/** The segments of one timeline in a directory. */
export class WalSegmentSet {
  constructor(
    readonly dir: string,
    readonly timeline: number,
    readonly walSegSize: number,
    /** By segment number, the file to read (segmentFilesToRead). */
    readonly files: ReadonlyMap<bigint, WalSegmentFile>,
    private readonly ancestry?: TimelineAncestry,
  ) {}

  get lowestSegno(): bigint {
    let low = -1n;
    for (const s of this.files.keys()) if (low < 0n || s < low) low = s;
    return low;
  }

  get highestSegno(): bigint {
    let high = -1n;
    for (const s of this.files.keys()) if (s > high) high = s;
    return high;
  }

  fileFor(segno: bigint): WalSegmentFile | undefined {
    return this.files.get(segno);
  }

  segmentName(segno: bigint): string {
    return this.ancestry ? this.ancestry.fileName(segno, this.walSegSize) : segmentFileName(this.timeline, segno, this.walSegSize);
  }
}

async function listNames(dir: string): Promise<string[]> {
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new WalDirError(`directory "${dir}" does not exist`, 'not-found');
    throw new WalDirError(`cannot access "${dir}": ${(err as Error).message}`, 'unreadable');
  }
  if (!st.isDirectory()) throw new WalDirError(`"${dir}" is not a directory`, 'not-a-directory');
  try {
    return await readdir(dir);
  } catch (err) {
    throw new WalDirError(`cannot list "${dir}": ${(err as Error).message}`, 'unreadable');
  }
}

/** Read the segment size from a file's long page header; null when the file is too short. */
function segSizeFromHeader(path: string, name: string): number | null {
  const head = Buffer.alloc(LONG_HEADER_SIZE);
  let n: number;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new WalDirError(`cannot open "${path}": ${(err as Error).message}`, 'unreadable');
  }
  try {
    n = readSync(fd, head, 0, LONG_HEADER_SIZE, 0);
  } catch (err) {
    throw new WalDirError(`cannot read "${path}": ${(err as Error).message}`, 'unreadable');
  } finally {
    closeSync(fd);
  }
  if (n === 0) return null;
  const hint = '(pass the segment size explicitly)';
  if (n < LONG_HEADER_SIZE) throw new WalDirError(`cannot read the segment size from "${name}": only ${n} bytes ${hint}`, 'bad-header');
  const magic = head.readUInt16LE(0);
  const info = head.readUInt16LE(2);
  if (!KNOWN_MAGICS.has(magic) || !(info & XLP_LONG_HEADER)) {
    throw new WalDirError(`cannot read the segment size from "${name}": no valid long page header ${hint}`, 'bad-header');
  }
  const size = head.readUInt32LE(32);
  const blcksz = head.readUInt32LE(36);
  if (!isValidWalSegSize(size) || blcksz !== XLOG_BLCKSZ) {
    throw new WalDirError(`"${name}" declares an invalid segment size ${size} ${hint}`, 'bad-header');
  }
  return size;
}

/**
 * Look at a directory's segment files and pick the timeline and segment
 * size. Only names are checked here; file sizes are checked as files are read.
 */
export async function openWalDir(dir: string, opts: WalDirOptions = {}): Promise<WalSegmentSet> {
  if (opts.walSegSize !== undefined && !isValidWalSegSize(opts.walSegSize)) {
    throw new WalDirError(`invalid WAL segment size ${opts.walSegSize}: a power of two from 1 MiB to 1 GiB`, 'bad-option');
  }
  if (opts.timeline !== undefined && !(Number.isInteger(opts.timeline) && opts.timeline >= 1 && opts.timeline <= 0xffffffff)) {
    throw new WalDirError(`invalid timeline ${opts.timeline}: an integer from 1 to 4294967295`, 'bad-option');
  }
  const names = (await listNames(dir)).filter((n) => SEGMENT_LIKE.test(n)).sort();
  if (names.length === 0) throw new WalDirError(`no WAL segment files in "${dir}"`, 'no-segments');

  const tliOf = (name: string): number => parseInt(name.slice(0, 8), 16);
  const ancestry = opts.ancestry;
  const timeline = ancestry?.timeline ?? opts.timeline ?? Math.max(...names.map(tliOf));
  const mine = names.filter((n) => (ancestry ? ancestry.includes(tliOf(n)) : tliOf(n) === timeline));
  if (mine.length === 0) throw new WalDirError(`no WAL segment files of timeline ${timeline} in "${dir}"`, 'no-segments');

  let walSegSize = opts.walSegSize;
  if (walSegSize === undefined) {
    // the lowest non-empty file among those read (names sort by segment)
    const toRead = segmentFilesToRead(
      mine.map((name) => ({ name, partial: name.endsWith(PARTIAL_SUFFIX) })),
      (f) => f.name.slice(0, 24),
    );
    for (const { name: n } of toRead.values()) {
      const size = segSizeFromHeader(join(dir, n), n);
      if (size !== null) {
        walSegSize = size;
        break;
      }
    }
    if (walSegSize === undefined) {
      throw new WalDirError(`cannot determine the segment size: every segment file of timeline ${timeline} in "${dir}" is empty (pass the segment size explicitly)`, 'bad-header');
    }
  }

  const found: WalSegmentFile[] = [];
  for (const name of mine) {
    const parsed = parseSegmentFileName(name, walSegSize);
    if (!parsed) throw new WalDirError(`"${name}" is not a valid segment file name for ${walSegSize}-byte segments`, 'bad-name');
    if (ancestry && ancestry.timelineOfSegment(parsed.segno, walSegSize) !== parsed.timeline) continue;
    found.push({ name, path: join(dir, name), segno: parsed.segno, partial: parsed.partial });
  }
  if (found.length === 0) throw new WalDirError(`no WAL segment files of timeline ${timeline} in "${dir}"`, 'no-segments');
  return new WalSegmentSet(dir, timeline, walSegSize, segmentFilesToRead(found, (f) => f.segno), ancestry);
}
