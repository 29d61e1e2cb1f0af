// How a WAL segment or timeline history file is stored in the archive: the
// key, the encoding and the checksum, shared by the uploader, readers served
// from the archive and `walkeeper restore-wal`.
//
// Key: `<tenant>/<timeline>/<file name>`, the file name exactly as in
// pg_wal (the storage backend adds its prefix). The object's metadata says
// how its body is encoded and what the file it stands for is:
//   walkeeper-encoding  `zstd` or `identity`
//   walkeeper-sha256    hex SHA-256 of the file's bytes (after decoding)
//   walkeeper-size      the file's size in bytes (after decoding)
import { createHash, webcrypto } from 'node:crypto';
import { zstdCompress, zstdDecompress, constants as zlib } from 'node:zlib';
import { promisify } from 'node:util';
import type { ObjectMetadata } from './remote-storage.js';

const compress = promisify(zstdCompress);
const decompress = promisify(zstdDecompress);

export type ObjectEncoding = 'zstd' | 'identity';

export const META_ENCODING = 'walkeeper-encoding';
export const META_SHA256 = 'walkeeper-sha256';
export const META_SIZE = 'walkeeper-size';

export function objectKey(tenantId: string, timelineId: string, fileName: string): string {
  return `${tenantId}/${timelineId}/${fileName}`;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256Hex() on the thread pool (Web Crypto): hashing a 16 MiB segment stays off the event loop. */
export async function sha256HexAsync(bytes: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', bytes)).toString('hex');
}

export interface EncodedObject {
  body: Buffer;
  metadata: ObjectMetadata;
}

/** The body and metadata to store for a file's bytes (`sha256`: its hex SHA-256 when the caller has it already). */
export async function encodeObject(file: Buffer, encoding: ObjectEncoding, zstdLevel = 1, sha256 = sha256Hex(file)): Promise<EncodedObject> {
  const metadata: ObjectMetadata = { [META_ENCODING]: encoding, [META_SHA256]: sha256, [META_SIZE]: String(file.length) };
  const body = encoding === 'zstd' ? await compress(file, { params: { [zlib.ZSTD_c_compressionLevel]: zstdLevel } }) : file;
  return { body, metadata };
}

export class ObjectFormatError extends Error {
  constructor(key: string, what: string) {
    super(`archive object "${key}": ${what}`);
    this.name = 'ObjectFormatError';
  }
}

/** What the stored metadata says the file is: its checksum and size. */
export function describedFile(key: string, metadata: ObjectMetadata): { encoding: ObjectEncoding; sha256: string; size: number } {
  const encoding = metadata[META_ENCODING] ?? 'identity';
  if (encoding !== 'zstd' && encoding !== 'identity') throw new ObjectFormatError(key, `unknown encoding "${encoding}"`);
  const sha256 = metadata[META_SHA256] ?? '';
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new ObjectFormatError(key, 'no walkeeper-sha256 in its metadata');
  const size = Number(metadata[META_SIZE]);
  if (!Number.isSafeInteger(size) || size < 0) throw new ObjectFormatError(key, 'no valid walkeeper-size in its metadata');
  return { encoding, sha256, size };
}

/** The file's bytes from an object's body, checked against its metadata. */
export async function decodeObject(key: string, body: Buffer, metadata: ObjectMetadata): Promise<Buffer> {
  const want = describedFile(key, metadata);
  let file: Buffer;
  try {
    file = want.encoding === 'zstd' ? await decompress(body) : body;
  } catch (err) {
    throw new ObjectFormatError(key, `cannot be decompressed (${(err as Error).message})`);
  }
  if (file.length !== want.size) throw new ObjectFormatError(key, `holds ${file.length} bytes, its metadata says ${want.size}`);
  const got = sha256Hex(file);
  if (got !== want.sha256) throw new ObjectFormatError(key, `SHA-256 ${got} does not match its metadata (${want.sha256})`);
  return file;
}
