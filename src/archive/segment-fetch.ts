// Reading one archived file back: the object's metadata, then its body,
// decoded and checked against the metadata (object-format.ts).
import { decodeObject } from './object-format.js';
import type { RemoteStorage } from './remote-storage.js';

/** The file stored under `key`, decoded and verified; null when there is no such object. */
export async function fetchArchivedFile(storage: RemoteStorage, key: string, signal?: AbortSignal): Promise<Buffer | null> {
  const info = await storage.head(key, signal);
  if (!info) return null;
  const body = await storage.get(key, undefined, signal);
  if (!body) return null;
  return decodeObject(key, body, info.metadata);
}
