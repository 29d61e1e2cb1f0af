// Fill an archive the way the daemon's uploader stores WAL: each complete
// segment and history file under `<tenant>/<timeline>/<name>`, encoded with
// encodeObject (zstd by default) and put through RemoteStorage.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeObject, objectKey, type ObjectEncoding } from '../../src/archive/object-format.js';
import type { RemoteStorage } from '../../src/archive/remote-storage.js';

export interface FillOptions {
  tenantId: string;
  timelineId: string;
  encoding?: ObjectEncoding;
  /** Only segments whose name sorts before this one (the one being written is not complete). */
  before?: string;
}

/** Archive the segment and history files of a pg_wal directory; returns the names stored, in order. */
export async function fillArchiveFromDir(storage: RemoteStorage, walDir: string, o: FillOptions): Promise<string[]> {
  const names = readdirSync(walDir)
    .filter((n) => (/^[0-9A-F]{24}$/.test(n) && (o.before === undefined || n < o.before)) || /^[0-9A-F]{8}\.history$/.test(n))
    .sort();
  for (const n of names) await putFile(storage, n, readFileSync(join(walDir, n)), o);
  return names;
}

/** Archive one file's bytes under its name. */
export async function putFile(storage: RemoteStorage, name: string, bytes: Buffer, o: FillOptions): Promise<void> {
  const { body, metadata } = await encodeObject(bytes, o.encoding ?? 'zstd');
  await storage.put(objectKey(o.tenantId, o.timelineId, name), body, metadata);
}
