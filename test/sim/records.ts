// Synthetic WAL for the simulation: self-checking records, so a "scan" of
// the durable bytes finds the end of the last complete record, as the real
// end-of-WAL scan does for PostgreSQL WAL.
//
// Record (little-endian), 20-byte header then payload:
//   @0  total length (header + payload)
//   @4  offset of the previous record's start from the WAL base, + 1 (0 for
//       the first record): a back-pointer by position, like PostgreSQL's
//       xl_prev. It stops a scan at most stale records of an older history,
//       but not at one that happens to follow a new record of the same length
//   @8  term of the leader that created the record
//   @12 sequence number within that leader's term
//   @16 CRC-32C of the header's first 16 bytes and the payload
import { crc32cTs } from '../../src/hot/crc32c.js';

export const RECORD_HEADER = 20;

export interface RecordInfo {
  lsn: bigint;
  end: bigint;
  term: number;
  seq: number;
  /** The record's CRC: its identity together with lsn. */
  crc: number;
}

export function makeRecord(prevLink: number, term: number, seq: number, payload: Uint8Array): { bytes: Uint8Array; crc: number } {
  const bytes = new Uint8Array(RECORD_HEADER + payload.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, bytes.length, true);
  v.setUint32(4, prevLink, true);
  v.setUint32(8, term, true);
  v.setUint32(12, seq, true);
  bytes.set(payload, RECORD_HEADER);
  const crc = crc32cTs(bytes.subarray(RECORD_HEADER), crc32cTs(bytes.subarray(0, 16)));
  v.setUint32(16, crc, true);
  return { bytes, crc };
}

/**
 * Walk records in `bytes`, which hold the WAL from `base`, and stop at the
 * first one that is incomplete, malformed, fails its CRC or does not link
 * to its predecessor. `end` is the end of the last good record (`base` if none).
 */
export function scanRecords(bytes: Uint8Array, length: number, base: bigint): { records: RecordInfo[]; end: bigint } {
  const records: RecordInfo[] = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  let prev = 0;
  while (p + RECORD_HEADER <= length) {
    const len = v.getUint32(p, true);
    if (len < RECORD_HEADER || p + len > length) break;
    if (v.getUint32(p + 4, true) !== prev) break;
    const crc = crc32cTs(bytes.subarray(p + RECORD_HEADER, p + len), crc32cTs(bytes.subarray(p, p + 16)));
    if (crc !== v.getUint32(p + 16, true)) break;
    records.push({ lsn: base + BigInt(p), end: base + BigInt(p + len), term: v.getUint32(p + 8, true), seq: v.getUint32(p + 12, true), crc });
    prev = p + 1;
    p += len;
  }
  return { records, end: base + BigInt(p) };
}
