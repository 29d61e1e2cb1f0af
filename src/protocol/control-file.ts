// The safekeeper.control format (docs/protocol.md §9).
// Version 3 (written): the 128-byte SafeKeeperInfo with format_version 3,
// then backup_lsn (u64 LE: end of the contiguous archived WAL prefix), then
// a u32 CRC-32C (LE) of the 136 bytes before it.
// Version 2 (read): the 128 bytes with format_version 2, then a u32 CRC-32C.
// Version 1 (read): the bare 128 bytes, no checksum.
// The decoded state always says format_version 2: that is what the wire
// SafeKeeperInfo carries, and the file's format must not leak into it.
// Writing the file durably (temp, fsync, rename) is src/storage's job.
import { crc32c } from '../hot/crc32c.js';
import type { Lsn } from '../lsn.js';
import { ProtocolError } from './errors.js';
import {
  CONTROL_FILE_V1_SIZE,
  CONTROL_FILE_V2_SIZE,
  CONTROL_FILE_V3_SIZE,
  CONTROL_FORMAT_V1,
  CONTROL_FORMAT_V2,
  CONTROL_FORMAT_V3,
  SAFEKEEPER_INFO_SIZE,
  SAFEKEEPER_MAGIC,
} from './layout.js';
import { decodeSafeKeeperInfo, encodeSafeKeeperInfo, hex32 } from './messages.js';
import type { SafeKeeperInfo } from './types.js';

/** What a control file holds. */
export interface ControlFileContents {
  state: SafeKeeperInfo;
  /** End of the contiguous archived prefix (0 in format 1 and 2 files). */
  backupLsn: Lsn;
  /** The file's format version (1, 2 or 3). */
  format: number;
}

/** 140 bytes, always format 3 (format 1 and 2 states are upgraded on write). */
export function encodeControlFile(state: SafeKeeperInfo, backupLsn: Lsn = 0n): Buffer {
  const out = Buffer.alloc(CONTROL_FILE_V3_SIZE);
  encodeSafeKeeperInfo(state, CONTROL_FORMAT_V3).copy(out, 0);
  out.writeBigUInt64LE(backupLsn, SAFEKEEPER_INFO_SIZE);
  out.writeUInt32LE(crc32c(out.subarray(0, SAFEKEEPER_INFO_SIZE + 8)), SAFEKEEPER_INFO_SIZE + 8);
  return out;
}

/**
 * Decode a control file of format 1, 2 or 3. Refuses a wrong size, a wrong
 * magic, an unknown format version and (format 2, 3) a bad checksum, with a
 * ProtocolError whose message names `fileName`.
 */
export function decodeControlFileContents(bytes: Uint8Array, fileName: string): ControlFileContents {
  const what = `control file "${fileName}"`;
  const sizes = `${CONTROL_FILE_V3_SIZE} bytes (format 3), ${CONTROL_FILE_V2_SIZE} (format 2) or ${CONTROL_FILE_V1_SIZE} (format 1)`;
  if (bytes.length < 8) throw new ProtocolError('wrong-length', what, 'size', sizes, `${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== SAFEKEEPER_MAGIC) throw new ProtocolError('bad-magic', what, 'magic', hex32(SAFEKEEPER_MAGIC), hex32(magic));
  const version = view.getUint32(4, true);
  const checked = (size: number, crcAt: number | null): void => {
    if (bytes.length !== size) {
      throw new ProtocolError('wrong-length', what, 'size', `${size} bytes for format ${version}`, `${bytes.length} bytes`);
    }
    if (crcAt === null) return;
    const stored = view.getUint32(crcAt, true);
    const actual = crc32c(bytes.subarray(0, crcAt));
    if (stored !== actual) throw new ProtocolError('bad-checksum', what, 'CRC-32C', hex32(actual), hex32(stored));
  };
  let backupLsn = 0n;
  if (version === CONTROL_FORMAT_V1) checked(CONTROL_FILE_V1_SIZE, null);
  else if (version === CONTROL_FORMAT_V2) checked(CONTROL_FILE_V2_SIZE, SAFEKEEPER_INFO_SIZE);
  else if (version === CONTROL_FORMAT_V3) {
    checked(CONTROL_FILE_V3_SIZE, SAFEKEEPER_INFO_SIZE + 8);
    backupLsn = view.getBigUint64(SAFEKEEPER_INFO_SIZE, true);
  } else {
    throw new ProtocolError('unknown-version', what, 'format_version', `${CONTROL_FORMAT_V1}, ${CONTROL_FORMAT_V2} or ${CONTROL_FORMAT_V3}`, String(version));
  }
  const state = decodeSafeKeeperInfo(bytes.subarray(0, SAFEKEEPER_INFO_SIZE), what);
  // Format 1 states keep their version (the control file's loadedFormat shows it); 3 reads as the wire's 2.
  if (version === CONTROL_FORMAT_V3) state.formatVersion = CONTROL_FORMAT_V2;
  return { state, backupLsn, format: version };
}

/** The stored state of a control file of any readable format (see decodeControlFileContents). */
export function decodeControlFile(bytes: Uint8Array, fileName: string): SafeKeeperInfo {
  return decodeControlFileContents(bytes, fileName).state;
}
