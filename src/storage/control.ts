// safekeeper.control: read (format 1 or 2) and persist (format 2, atomically
// and durably: temp file, fsync, rename, fsync the directory).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeControlFile, encodeControlFile } from '../protocol/control-file.js';
import type { SafeKeeperInfo } from '../protocol/types.js';
import { writeFileDurableSync } from './fsutil.js';

export const CONTROL_FILE = 'safekeeper.control';
export const CONTROL_TEMP = 'safekeeper.control.partial';

export class ControlFile {
  readonly path: string;
  /** Format version of the file as last read (1 files are upgraded on the next persist). */
  loadedFormat: number | null = null;

  constructor(
    readonly dir: string,
    private readonly noSync = false,
  ) {
    this.path = join(dir, CONTROL_FILE);
  }

  /** The stored state, or null when there is no control file. Throws ProtocolError for a damaged file. */
  load(): SafeKeeperInfo | null {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const state = decodeControlFile(bytes, this.path);
    this.loadedFormat = state.formatVersion;
    return state;
  }

  /** Write `state` as format 2; durable before returning (unless noSync). */
  persist(state: SafeKeeperInfo): void {
    writeFileDurableSync(this.path, encodeControlFile(state), { noSync: this.noSync, tempPath: join(this.dir, CONTROL_TEMP) });
  }
}
