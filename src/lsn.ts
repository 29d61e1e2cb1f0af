// WAL positions. An Lsn is a bigint byte position in the WAL stream; this
// module is the one home of its text form and of segment arithmetic.

export type Lsn = bigint;

export const XLOG_BLCKSZ = 8192;
export const MIN_WAL_SEG_SIZE = 1 << 20;
export const MAX_WAL_SEG_SIZE = 1 << 30;
export const DEFAULT_WAL_SEG_SIZE = 16 << 20;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const SEGMENT_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$/;

export class LsnError extends Error {}

/** Parse `X/Y` (hex high/low 32 bits). */
export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text.trim());
  if (!m) throw new LsnError(`invalid LSN "${text}": expected X/Y with up to 8 hex digits on each side`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

/** Format as PostgreSQL does: upper-case hex, no zero padding. */
export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function isValidWalSegSize(size: number): boolean {
  return Number.isInteger(size) && size >= MIN_WAL_SEG_SIZE && size <= MAX_WAL_SEG_SIZE && (size & (size - 1)) === 0;
}

export function segmentNumber(lsn: Lsn, segSize: number): bigint {
  return lsn / BigInt(segSize);
}

export function segmentOffset(lsn: Lsn, segSize: number): number {
  return Number(lsn % BigInt(segSize));
}

export function segmentStart(segno: bigint, segSize: number): Lsn {
  return segno * BigInt(segSize);
}

/** Start of the segment holding `lsn`. */
export function segmentFloor(lsn: Lsn, segSize: number): Lsn {
  return lsn - (lsn % BigInt(segSize));
}

export function maxAlign(lsn: Lsn): Lsn {
  return (lsn + 7n) & ~7n;
}

const hex8 = (n: bigint | number): string => n.toString(16).toUpperCase().padStart(8, '0');

/** `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then segno split at 2^32 / segSize. */
export function segmentFileName(timeline: number, segno: bigint, segSize: number): string {
  const perId = 0x100000000n / BigInt(segSize);
  return hex8(timeline) + hex8(segno / perId) + hex8(segno % perId);
}

export interface SegmentName {
  timeline: number;
  segno: bigint;
  partial: boolean;
}

/** Parse a segment file name (optionally `.partial`); null when it is not one. */
export function parseSegmentFileName(name: string, segSize: number): SegmentName | null {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return null;
  const perId = 0x100000000n / BigInt(segSize);
  const low = BigInt('0x' + m[3]);
  if (low >= perId) return null;
  return { timeline: parseInt(m[1], 16), segno: BigInt('0x' + m[2]) * perId + low, partial: m[4] !== undefined };
}

/** Bytes in the WAL stream between two positions, as a JS number (callers bound it). */
export function lsnDiff(a: Lsn, b: Lsn): number {
  return Number(a - b);
}
