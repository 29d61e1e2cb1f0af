// The node id file: `<data dir>/safekeeper.id` holds this safekeeper's
// numeric id in decimal, beside the lock (as Neon's safekeeper keeps it).
// Written once, durably, the first time the directory is used.
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurableSync } from './fsutil.js';

export const NODE_ID_FILE = 'safekeeper.id';

/** The file holds something other than a node id. */
export class NodeIdFileError extends Error {
  constructor(
    readonly path: string,
    text: string,
  ) {
    super(`${path} does not hold a node id: "${text.slice(0, 40)}"`);
    this.name = 'NodeIdFileError';
  }
}

export function nodeIdPath(dir: string): string {
  return join(dir, NODE_ID_FILE);
}

/** The stored id, or null when the directory has none yet. */
export function readNodeId(dir: string): number | null {
  const path = nodeIdPath(dir);
  if (!existsSync(path)) return null;
  const text = readFileSync(path, 'utf8').trim();
  if (!/^\d+$/.test(text)) throw new NodeIdFileError(path, text);
  return Number(text);
}

/** Store `id` (write-temp, fsync, rename, fsync the directory). */
export function writeNodeId(dir: string, id: number, opts: { noSync?: boolean } = {}): void {
  writeFileDurableSync(nodeIdPath(dir), Buffer.from(`${id}\n`), { noSync: opts.noSync, mode: 0o644 });
}

/**
 * A fresh random id, 1 to 2^48-1: within what `--id` accepts (at most 15
 * digits) and exact as a JSON number, so it reads back the same everywhere.
 */
export function newNodeId(): number {
  return randomInt(1, 2 ** 48);
}
