// A WalSource over a directory of segment files: a walkeeper timeline
// directory, a pg_receivewal directory or a copy of pg_wal. The owner moves
// the commit and flush positions with advance(); readers waiting for WAL
// are woken by that call.
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { segmentFileName, segmentNumber, segmentOffset, type Lsn } from '../lsn.js';
import { historyFileName, parseHistory } from './history.js';
import { LsnWatch } from './positions.js';
import { ReaderRegistry, WalReadError, WalSegmentMissingError, type ReaderHandle, type ReaderInfo, type WaitTarget, type WalSource } from './source.js';

export interface FileWalSourceOptions {
  dir: string;
  systemId: bigint;
  pgTimeline: number;
  walSegSize: number;
  /** server_version_num of the WAL's PostgreSQL (default 150000). */
  pgVersion?: number;
  commitLsn: Lsn;
  /** Default: commitLsn. */
  flushLsn?: Lsn;
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

export class FileWalSource implements WalSource {
  readonly dir: string;
  readonly systemId: bigint;
  readonly pgTimeline: number;
  readonly walSegSize: number;
  readonly pgVersion: number;
  readonly commit: LsnWatch;
  readonly flush: LsnWatch;
  readonly readers = new ReaderRegistry();
  /** Timelines to look for segment files of, newest first; filled from the history file on first read. */
  private timelines: Promise<number[]> | undefined;

  constructor(opts: FileWalSourceOptions) {
    this.dir = opts.dir;
    this.systemId = opts.systemId;
    this.pgTimeline = opts.pgTimeline;
    this.walSegSize = opts.walSegSize;
    this.pgVersion = opts.pgVersion ?? 150000;
    this.flush = new LsnWatch(opts.flushLsn ?? opts.commitLsn);
    this.commit = new LsnWatch(opts.commitLsn);
  }

  commitLsn(): Lsn {
    return this.commit.value;
  }

  flushLsn(): Lsn {
    return this.flush.value;
  }

  /** Move the positions forward (flush first; commit never passes flush) and wake waiting senders. */
  advance(pos: { commit?: Lsn; flush?: Lsn }): void {
    const flush = pos.flush ?? 0n;
    const commit = pos.commit ?? 0n;
    this.flush.advance(flush > commit ? flush : commit);
    if (pos.commit !== undefined) this.commit.advance(commit);
  }

  waitFor(lsn: Lsn, which: WaitTarget, signal: AbortSignal): Promise<void> {
    return (which === 'commit' ? this.commit : this.flush).waitPast(lsn, signal);
  }

  attachReader(info: ReaderInfo): ReaderHandle {
    return this.readers.attach(info);
  }

  async timelineHistory(tli: number): Promise<Uint8Array | null> {
    try {
      return await readFile(join(this.dir, historyFileName(tli)));
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /**
   * The current timeline, then its ancestors (newest first): an older
   * segment may only exist under the name of the timeline that wrote it.
   */
  private candidateTimelines(): Promise<number[]> {
    this.timelines ??= (async () => {
      const out = [this.pgTimeline];
      if (this.pgTimeline > 1) {
        const content = await this.timelineHistory(this.pgTimeline).catch(() => null);
        if (content) {
          try {
            for (const e of parseHistory(content).reverse()) out.push(e.timeline);
          } catch {
            /* an unreadable history only narrows the search */
          }
        }
      }
      return out;
    })();
    return this.timelines;
  }

  async read(lsn: Lsn, buf: Uint8Array): Promise<number> {
    return readSegmentFile(this.dir, this.walSegSize, await this.candidateTimelines(), lsn, buf);
  }
}

/**
 * Read WAL at `lsn` from the segment files in `dir` into `buf`: at most to
 * the end of that segment. For each timeline in `timelines` (newest first)
 * it tries `<name>.partial`, then `<name>`. The WalSource.read() contract:
 * WalSegmentMissingError when no file has the segment, WalReadError when a
 * file cannot be read or is too short.
 */
export async function readSegmentFile(dir: string, walSegSize: number, timelines: readonly number[], lsn: Lsn, buf: Uint8Array): Promise<number> {
  const segno = segmentNumber(lsn, walSegSize);
  const offset = segmentOffset(lsn, walSegSize);
  const want = Math.min(buf.length, walSegSize - offset);
  if (want <= 0) return 0;
  let fh: FileHandle | undefined;
  let name = segmentFileName(timelines[0], segno, walSegSize);
  outer: for (const tli of timelines) {
    const base = segmentFileName(tli, segno, walSegSize);
    // `.partial` first, then the full name; a rename in between is
    // caught by trying `.partial` last once more.
    for (const file of [base + '.partial', base, base + '.partial']) {
      try {
        fh = await open(join(dir, file), 'r');
        name = base;
        break outer;
      } catch (err) {
        if (!isNotFound(err)) throw new WalReadError(base, offset, `could not open file "${file}": ${(err as Error).message}`);
      }
    }
  }
  if (!fh) throw new WalSegmentMissingError(name);
  try {
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(buf, got, want - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < want) {
      throw new WalReadError(name, offset, `could not read from log segment ${name}, offset ${offset}: read ${got} of ${want}`, true);
    }
    return got;
  } catch (err) {
    if (err instanceof WalReadError) throw err;
    throw new WalReadError(name, offset, `could not read from log segment ${name}, offset ${offset}: ${(err as Error).message}`);
  } finally {
    await fh.close();
  }
}
