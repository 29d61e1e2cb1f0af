// A WalSource over a directory of segment files: a walkeeper timeline
// directory, a pg_receivewal directory or a copy of pg_wal. The owner moves
// the commit and flush positions with advance(); readers waiting for WAL
// are woken by that call.
import { readSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { segmentFileName, segmentNumber, segmentOffset, type Lsn } from '../lsn.js';
import { segmentFileNamesToTry } from '../wal/segment-files.js';
import { historyFileName, parseHistory } from '../wal/history.js';
import { LsnWatch } from './positions.js';
import { ReaderRegistry, WalReadError, WalSegmentMissingError, type ReaderHandle, type ReaderInfo, type WaitTarget, type WalReader, type WalSource } from './source.js';

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

/** An open segment file and its base name (without `.partial`). */
interface OpenSegment {
  fh: FileHandle;
  name: string;
}

/**
 * Open the file of segment `segno`: for each timeline in `timelines`
 * (newest first) the names segmentFileNamesToTry() gives, `.partial`
 * first. WalSegmentMissingError when none is there.
 */
async function openSegment(dir: string, walSegSize: number, timelines: readonly number[], segno: bigint, offset: number): Promise<OpenSegment> {
  for (const tli of timelines) {
    const base = segmentFileName(tli, segno, walSegSize);
    for (const file of segmentFileNamesToTry(base)) {
      try {
        return { fh: await open(join(dir, file), 'r'), name: base };
      } catch (err) {
        if (!isNotFound(err)) throw new WalReadError(base, offset, `could not open file "${file}": ${(err as Error).message}`);
      }
    }
  }
  throw new WalSegmentMissingError(segmentFileName(timelines[0], segno, walSegSize));
}

/** Read exactly `want` bytes at `offset` of an open segment into `buf`. */
async function readFully(seg: OpenSegment, offset: number, buf: Uint8Array, want: number): Promise<number> {
  const { fh, name } = seg;
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
  }
}

/** readFully() without the thread pool: for WAL in the page cache it costs a fraction of it. */
function readFullySync(seg: OpenSegment, offset: number, buf: Uint8Array, want: number): number {
  const { fh, name } = seg;
  let got = 0;
  try {
    while (got < want) {
      const n = readSync(fh.fd, buf, got, want - got, offset + got);
      if (n === 0) break;
      got += n;
    }
  } catch (err) {
    throw new WalReadError(name, offset, `could not read from log segment ${name}, offset ${offset}: ${(err as Error).message}`);
  }
  if (got < want) {
    throw new WalReadError(name, offset, `could not read from log segment ${name}, offset ${offset}: read ${got} of ${want}`, true);
  }
  return got;
}

/**
 * A synchronous read slower than this may have waited for the disk. (A few
 * milliseconds happen from the page cache too, when the scheduler is busy:
 * with 2 ms, 1 read in 500 counted as slow while streaming on a loaded
 * 2-CPU machine.)
 */
const SLOW_SYNC_READ_MS = 10;
/**
 * Slow reads in a row that mean the stream reads from the disk. One alone
 * is as likely the scheduler preempting us on a busy machine; a stream of
 * page cache misses makes every read slow.
 */
const SLOW_SYNC_READS_IN_A_ROW = 2;
/** Then this many reads go through the thread pool before trying synchronous reads again. */
const ASYNC_READS_AFTER_SLOW = 64;

/**
 * Read WAL at `lsn` from the segment files in `dir` into `buf`: at most to
 * the end of that segment. For each timeline in `timelines` (newest first)
 * it tries `<name>.partial`, then `<name>`. The WalSource.read() contract:
 * WalSegmentMissingError when no file has the segment, WalReadError when a
 * file cannot be read or is too short.
 */
export async function readSegmentFile(dir: string, walSegSize: number, timelines: readonly number[], lsn: Lsn, buf: Uint8Array): Promise<number> {
  const offset = segmentOffset(lsn, walSegSize);
  const want = Math.min(buf.length, walSegSize - offset);
  if (want <= 0) return 0;
  const seg = await openSegment(dir, walSegSize, timelines, segmentNumber(lsn, walSegSize), offset);
  try {
    return await readFully(seg, offset, buf, want);
  } finally {
    await seg.fh.close();
  }
}

/**
 * readSegmentFile() for one stream, keeping the last few segment files open
 * so that a stream does not open and close a file for every message.
 * Segment files only ever grow in place, and a rename (`.partial` to the
 * full name) keeps the open file valid; when WAL is rewritten (a
 * truncation: segments zeroed or removed) the owner calls invalidate() and
 * the next read opens the files afresh.
 *
 * Reads are synchronous while they are fast. A reader normally follows the
 * end of the WAL, which is in the page cache, and copying 128 KiB from there
 * takes tens of microseconds: less than handing the read to the thread pool
 * and waking up for its result costs, which measured about three times the
 * CPU per byte streamed (bench/replication.ts). Synchronous reads that take
 * long twice in a row (page cache misses: old WAL on a slow disk) switch the
 * reader to thread-pool reads for a while, so that it does not hold up the
 * event loop and with it every other connection.
 */
export class SegmentFileReader implements WalReader {
  private readonly files = new Map<bigint, Promise<OpenSegment>>();
  private closed = false;
  /** Bumped by invalidate(). */
  generation = 0;
  /** Reads left to make through the thread pool after a slow synchronous one. */
  private asyncReads = 0;
  /** Synchronous reads in a row slower than SLOW_SYNC_READ_MS. */
  private slowInARow = 0;
  readonly stats = { syncReads: 0, asyncReads: 0, slowSyncReads: 0 };

  constructor(
    private readonly dir: string,
    private readonly walSegSize: () => number,
    /** The timelines whose files may hold segment `segno`, in the order to try them. */
    private readonly timelines: (segno: bigint) => readonly number[] | Promise<readonly number[]>,
    private readonly onClose?: (r: SegmentFileReader) => void,
    /** Files kept open at most (a message may span two segments). */
    private readonly maxOpen = 2,
    /** Milliseconds clock timing the synchronous reads (tests make reads look slow). */
    private readonly clock: () => number = () => performance.now(),
  ) {}

  async read(lsn: Lsn, buf: Uint8Array): Promise<number> {
    const segSize = this.walSegSize();
    const segno = segmentNumber(lsn, segSize);
    const offset = segmentOffset(lsn, segSize);
    const want = Math.min(buf.length, segSize - offset);
    if (want <= 0) return 0;
    if (this.closed) return readSegmentFile(this.dir, segSize, await this.timelines(segno), lsn, buf);
    let opening = this.files.get(segno);
    if (!opening) {
      opening = (async () => openSegment(this.dir, segSize, await this.timelines(segno), segno, offset))();
      this.files.set(segno, opening);
      // A failed open is not kept.
      opening.catch(() => {
        if (this.files.get(segno) === opening) this.files.delete(segno);
      });
      while (this.files.size > this.maxOpen) this.drop(this.files.keys().next().value as bigint);
    }
    const seg = await opening;
    try {
      if (this.asyncReads > 0) {
        this.asyncReads--;
        this.stats.asyncReads++;
        return await readFully(seg, offset, buf, want);
      }
      const t0 = this.clock();
      const n = readFullySync(seg, offset, buf, want);
      this.stats.syncReads++;
      if (this.clock() - t0 > SLOW_SYNC_READ_MS) {
        this.stats.slowSyncReads++;
        if (++this.slowInARow >= SLOW_SYNC_READS_IN_A_ROW) {
          this.slowInARow = 0;
          this.asyncReads = ASYNC_READS_AFTER_SLOW;
        }
      } else {
        this.slowInARow = 0;
      }
      return n;
    } catch (err) {
      if (this.files.get(segno) === opening) this.drop(segno);
      throw err;
    }
  }

  private drop(segno: bigint): void {
    const p = this.files.get(segno);
    if (!p) return;
    this.files.delete(segno);
    // Node closes a FileHandle only after the reads in flight on it are done.
    p.then(
      (seg) => seg.fh.close().catch(() => {}),
      () => {},
    );
  }

  /** Forget every open file: the WAL in them may have been rewritten. */
  invalidate(): void {
    this.generation++;
    for (const segno of [...this.files.keys()]) this.drop(segno);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.invalidate();
    this.onClose?.(this);
  }
}
