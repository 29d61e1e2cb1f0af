// Timeline history files (`%08X.history`) in a timeline directory: stored
// once, durably (temp file, fsync, rename, directory fsync), never replaced
// by different content and never removed by WAL removal.
import { readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { historyFileName } from '../wal/history.js';
import { fsyncDirSync, mkdirDurableSync, writeFileDurableSync } from './fsutil.js';

const TEMP_SUFFIX = '.tmp';

/** A different history is already stored for the timeline. */
export class HistoryConflictError extends Error {
  override readonly name = 'HistoryConflictError';
  constructor(readonly tli: number) {
    super(`timeline history of timeline ${tli} differs from the one stored`);
  }
}

/** The stored history file of PostgreSQL timeline `tli` in `dir`, or null. */
export function readHistoryFile(dir: string, tli: number): Buffer | null {
  try {
    return readFileSync(join(dir, historyFileName(tli)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Store the history file of timeline `tli` in `dir` (created durably when
 * missing). 'identical' when the same content is stored already (nothing is
 * written); HistoryConflictError when different content is.
 */
export function storeHistoryFile(dir: string, tli: number, content: Uint8Array, opts: { noSync?: boolean } = {}): 'stored' | 'identical' {
  const stored = readHistoryFile(dir, tli);
  if (stored) {
    if (Buffer.compare(stored, content) === 0) return 'identical';
    throw new HistoryConflictError(tli);
  }
  mkdirDurableSync(dir, { noSync: opts.noSync });
  const path = join(dir, historyFileName(tli));
  writeFileDurableSync(path, content, { noSync: opts.noSync, tempPath: path + TEMP_SUFFIX });
  return 'stored';
}

/** Remove leftovers of a history file write interrupted by a crash. */
export function removeHistoryTempFiles(dir: string, opts: { noSync?: boolean } = {}): void {
  let removed = false;
  for (const f of readdirSync(dir)) {
    if (/^[0-9A-F]{8}\.history\.tmp$/.test(f)) {
      unlinkSync(join(dir, f));
      removed = true;
    }
  }
  if (removed && !opts.noSync) fsyncDirSync(dir);
}
