// The safekeeper.control format. Version 2 (written): the 128-byte
// SafeKeeperInfo with format_version 2, then a u32 CRC-32C (little-endian) of
// those 128 bytes. Version 1 (read only): the bare 128 bytes, no checksum.
// Writing the file durably (temp, fsync, rename) is src/storage's job.
import { crc32c } from '../hot/crc32c.js';
import { ProtocolError } from './errors.js';
import {
  CONTROL_FILE_V1_SIZE,
  CONTROL_FILE_V2_SIZE,
  CONTROL_FORMAT_V1,
  CONTROL_FORMAT_V2,
  SAFEKEEPER_INFO_SIZE,
  SAFEKEEPER_MAGIC,
} from './layout.js';
import { decodeSafeKeeperInfo, encodeSafeKeeperInfo, hex32 } from './messages.js';
import type { SafeKeeperInfo } from './types.js';

/** 132 bytes, always format 2 (a format-1 state is upgraded on write). */
export function encodeControlFile(state: SafeKeeperInfo): Buffer {
  const out = Buffer.alloc(CONTROL_FILE_V2_SIZE);
  encodeSafeKeeperInfo(state, CONTROL_FORMAT_V2).copy(out, 0);
  out.writeUInt32LE(crc32c(out.subarray(0, SAFEKEEPER_INFO_SIZE)), SAFEKEEPER_INFO_SIZE);
  return out;
}

/**
 * Decode a control file of format 1 or 2. Refuses a wrong size, a wrong
 * magic, an unknown format version and (format 2) a bad checksum, with a
 * ProtocolError whose message names `fileName`.
 */
export function decodeControlFile(bytes: Uint8Array, fileName: string): SafeKeeperInfo {
  const what = `control file "${fileName}"`;
  if (bytes.length < 8) {
    throw new ProtocolError('wrong-length', what, 'size', `${CONTROL_FILE_V2_SIZE} bytes (format 2) or ${CONTROL_FILE_V1_SIZE} (format 1)`, `${bytes.length} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== SAFEKEEPER_MAGIC) throw new ProtocolError('bad-magic', what, 'magic', hex32(SAFEKEEPER_MAGIC), hex32(magic));
  const version = view.getUint32(4, true);
  if (version === CONTROL_FORMAT_V1) {
    if (bytes.length !== CONTROL_FILE_V1_SIZE) {
      throw new ProtocolError('wrong-length', what, 'size', `${CONTROL_FILE_V1_SIZE} bytes for format 1`, `${bytes.length} bytes`);
    }
  } else if (version === CONTROL_FORMAT_V2) {
    if (bytes.length !== CONTROL_FILE_V2_SIZE) {
      throw new ProtocolError('wrong-length', what, 'size', `${CONTROL_FILE_V2_SIZE} bytes for format 2`, `${bytes.length} bytes`);
    }
    const stored = view.getUint32(SAFEKEEPER_INFO_SIZE, true);
    const actual = crc32c(bytes.subarray(0, SAFEKEEPER_INFO_SIZE));
    if (stored !== actual) throw new ProtocolError('bad-checksum', what, 'CRC-32C', hex32(actual), hex32(stored));
  } else {
    throw new ProtocolError('unknown-version', what, 'format_version', `${CONTROL_FORMAT_V1} or ${CONTROL_FORMAT_V2}`, String(version));
  }
  return decodeSafeKeeperInfo(bytes.subarray(0, SAFEKEEPER_INFO_SIZE), what);
}
