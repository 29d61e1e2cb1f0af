// safekeeper.control: read (format 1, 2 or 3) and persist (format 3,
// atomically and durably: temp file, fsync, rename, fsync the directory).
// The file carries the acceptor state and backup_lsn (the end of the
// contiguous archived WAL prefix); each is persisted with the other's last
// persisted value.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lsn } from '../lsn.js';
import { decodeControlFileContents, encodeControlFile } from '../protocol/control-file.js';
import type { SafeKeeperInfo } from '../protocol/types.js';
import { writeFileDurableSync } from './fsutil.js';

export const CONTROL_FILE = 'safekeeper.control';
export const CONTROL_TEMP = 'safekeeper.control.partial';

export class ControlFile {
  readonly path: string;
  /** Format version of the file as last read (1 and 2 files are upgraded on the next persist). */
  loadedFormat: number | null = null;
  /** backup_lsn as last read or persisted. */
  backupLsn: Lsn = 0n;

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
    const c = decodeControlFileContents(bytes, this.path);
    this.loadedFormat = c.format;
    this.backupLsn = c.backupLsn;
    return c.state;
  }

  /** Write `state` (with the current backup_lsn) as format 3; durable before returning (unless noSync). */
  persist(state: SafeKeeperInfo, backupLsn: Lsn = this.backupLsn): void {
    writeFileDurableSync(this.path, encodeControlFile(state, backupLsn), { noSync: this.noSync, tempPath: join(this.dir, CONTROL_TEMP) });
    this.backupLsn = backupLsn;
  }
}
