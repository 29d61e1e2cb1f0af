// Removing a directory tree without ever leaving half of it where it was:
// rename it away first (one atomic step, made durable by fsyncing the parent),
// then delete the renamed tree. A crash in between leaves only the renamed
// directory, whose name no loader accepts as a timeline.
import { existsSync, readdirSync, renameSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDirSync } from './fsutil.js';

export interface RemovedFile {
  name: string;
  bytes: number;
}

export interface RemovedDir {
  /** False when there was nothing to remove. */
  existed: boolean;
  /** Regular files directly in the directory, sorted by name (what was removed). */
  files: RemovedFile[];
  /** Total size of every file in the tree. */
  bytes: number;
}

function treeBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += treeBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

/** The name a directory is renamed to before it is deleted: `.<name>.deleting-<ms>`. */
export function deletingName(dir: string, now = Date.now()): string {
  return join(dirname(dir), `.${basename(dir)}.deleting-${now}`);
}

/**
 * Rename `dir` away (fsyncing its parent), then delete the renamed tree.
 * Returns what was there.
 */
export function removeDirDurably(dir: string, opts: { noSync?: boolean } = {}): RemovedDir {
  if (!existsSync(dir)) return { existed: false, files: [], bytes: 0 };
  const away = deletingName(dir);
  renameSync(dir, away);
  if (!opts.noSync) fsyncDirSync(dirname(dir));
  const files: RemovedFile[] = [];
  for (const e of readdirSync(away, { withFileTypes: true })) {
    if (e.isFile()) files.push({ name: e.name, bytes: statSync(join(away, e.name)).size });
  }
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const bytes = treeBytes(away);
  rmSync(away, { recursive: true, force: true });
  if (!opts.noSync) fsyncDirSync(dirname(dir));
  return { existed: true, files, bytes };
}

/** Remove `dir` if it is empty, durably (fsyncing its parent). Throws ENOTEMPTY when it is not empty, ENOENT when it is not there. */
export function removeEmptyDirDurably(dir: string, opts: { noSync?: boolean } = {}): void {
  rmdirSync(dir);
  if (!opts.noSync) fsyncDirSync(dirname(dir));
}

/** Remove leftovers of deletions interrupted by a crash (`.<name>.deleting-*` entries) in `parent`. */
export function removeInterruptedDeletions(parent: string): string[] {
  if (!existsSync(parent)) return [];
  const gone: string[] = [];
  for (const name of readdirSync(parent)) {
    if (!/^\..+\.deleting-\d+$/.test(name)) continue;
    rmSync(join(parent, name), { recursive: true, force: true });
    gone.push(name);
  }
  return gone;
}
