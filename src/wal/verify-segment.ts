// Is this buffer the WAL file its name says it is? Checked before a file
// restored from an archive or a safekeeper is handed to PostgreSQL, so a
// truncated, mixed-up or damaged file stops recovery instead of feeding it.
//
// A segment: exactly the size its first page's long header declares; that
// header has a known magic, the long-header flag, the right block size, an
// xlp_pageaddr equal to the segment's start LSN as named, and an xlp_tli no
// newer than the timeline in the name (the first segment of a new timeline
// is a copy of the old timeline's last one, so its first page may carry the
// parent's TLI, exactly as PostgreSQL's reader allows).
import { formatLsn, isValidWalSegSize, parseSegmentFileName, segmentStart, XLOG_BLCKSZ } from '../lsn.js';

const KNOWN_MAGICS = new Set([0xd106, 0xd10d, 0xd110, 0xd113, 0xd116]);
const XLP_LONG_HEADER = 0x0002;
const LONG_HEADER_SIZE = 40;

const SEGMENT_NAME = /^[0-9A-F]{24}$/;
export const HISTORY_NAME = /^([0-9A-F]{8})\.history$/;

export type WalFileKind = 'segment' | 'history';

/** 'segment' or 'history' for a name PostgreSQL asks restore_command for; null for anything else. */
export function walFileKind(name: string): WalFileKind | null {
  if (SEGMENT_NAME.test(name)) return 'segment';
  if (HISTORY_NAME.test(name)) return 'history';
  return null;
}

export class WalFileCheckError extends Error {
  constructor(name: string, what: string) {
    super(`${name}: ${what}`);
    this.name = 'WalFileCheckError';
  }
}

/** The segment size a segment's first page declares (throws when the header is not a valid long header). */
export function declaredSegmentSize(name: string, head: Uint8Array): number {
  if (head.length < LONG_HEADER_SIZE) throw new WalFileCheckError(name, `only ${head.length} bytes, less than a page header`);
  const view = Buffer.from(head.buffer, head.byteOffset, LONG_HEADER_SIZE);
  const magic = view.readUInt16LE(0);
  const info = view.readUInt16LE(2);
  if (!KNOWN_MAGICS.has(magic)) throw new WalFileCheckError(name, `first page has no WAL page magic (0x${magic.toString(16)})`);
  if (!(info & XLP_LONG_HEADER)) throw new WalFileCheckError(name, 'first page has no long header');
  const size = view.readUInt32LE(32);
  if (!isValidWalSegSize(size)) throw new WalFileCheckError(name, `first page declares an invalid segment size ${size}`);
  const blcksz = view.readUInt32LE(36);
  if (blcksz !== XLOG_BLCKSZ) throw new WalFileCheckError(name, `first page declares block size ${blcksz}, expected ${XLOG_BLCKSZ}`);
  return size;
}

/**
 * Check a segment's first page against its name; `fileSize` is the whole
 * file's length (the caller may hold only the first page).
 */
export function verifySegmentHead(name: string, head: Uint8Array, fileSize: number): void {
  const size = declaredSegmentSize(name, head);
  if (fileSize !== size) throw new WalFileCheckError(name, `holds ${fileSize} bytes, its first page declares segments of ${size}`);
  const parsed = parseSegmentFileName(name, size);
  if (!parsed || parsed.partial) throw new WalFileCheckError(name, `is not a segment name for ${size}-byte segments`);
  const view = Buffer.from(head.buffer, head.byteOffset, LONG_HEADER_SIZE);
  const tli = view.readUInt32LE(4);
  const pageAddr = view.readBigUInt64LE(8);
  const start = segmentStart(parsed.segno, size);
  if (pageAddr !== start) throw new WalFileCheckError(name, `first page is for LSN ${formatLsn(pageAddr)}, the name says ${formatLsn(start)}`);
  if (tli < 1 || tli > parsed.timeline) throw new WalFileCheckError(name, `first page is on timeline ${tli}, the name says ${parsed.timeline}`);
}

/** Throws WalFileCheckError unless `bytes` is a plausible segment `name`. */
export function verifySegment(name: string, bytes: Uint8Array): void {
  if (walFileKind(name) !== 'segment') throw new WalFileCheckError(name, 'is not a WAL segment file name');
  verifySegmentHead(name, bytes, bytes.length);
}
