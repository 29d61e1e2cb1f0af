// A timeline's AcceptorStorage: its control file and WAL segment files in
// <root>/<tenant>/<timeline>, with the group commit told of every write and
// truncation. An I/O error fails the timeline: nothing more is written or
// acknowledged on it until the daemon restarts and rescans its WAL.
import { existsSync } from 'node:fs';
import type { AcceptorStorage } from '../acceptor/storage.js';
import type { Logger } from '../log.js';
import { formatLsn, isValidWalSegSize, segmentNumber, segmentOffset, type Lsn } from '../lsn.js';
import type { SafeKeeperInfo } from '../protocol/types.js';
import { ControlFile } from '../storage/control.js';
import { mkdirDurableSync } from '../storage/fsutil.js';
import { WalSegments } from '../storage/segments.js';
import { completePassedSegments, syncLeftoverWal } from '../storage/leftover-wal.js';
import { readHistoryFile, removeHistoryTempFiles, storeHistoryFile } from '../storage/history-files.js';
import { copySegmentPrefix } from '../storage/timeline-switch.js';
import { parseHistory, type HistoryEntry } from '../wal/history.js';
import { TimelineAncestry } from '../wal/timeline-files.js';
import type { GroupCommit } from './group-commit.js';

export class TimelineFailedError extends Error {
  constructor(
    readonly timeline: string,
    readonly cause: Error,
  ) {
    super(`timeline ${timeline} is unavailable after a storage error (${cause.message}); its WAL is suspect until the safekeeper is restarted and rescans it`);
    this.name = 'TimelineFailedError';
  }
}

/** What the storage of a timeline counts (the metrics show it). */
export interface TimelineStats {
  /** WAL requests of WAL push sessions (the end-of-stream request not counted). */
  appends: number;
  writes: number;
  bytesWritten: number;
  syncs: number;
  truncations: number;
}

export interface TimelineStorageOptions {
  dir: string;
  /** The timeline's name, for messages. */
  name: string;
  noSync: boolean;
  log: Logger;
  groupCommit: GroupCommit;
  stats: TimelineStats;
  /** The acceptor's current state: segment size and PostgreSQL timeline when nothing is persisted yet. */
  currentState: () => SafeKeeperInfo;
  /** Whether segment `segno` may be made ahead of time (see WalSegmentsOptions). */
  mayPreallocate: (segno: bigint) => boolean;
  /** WAL from `lsn` on was discarded. */
  onTruncated: (lsn: Lsn) => void;
  /** The control file now names PostgreSQL timeline `tli`, which forked at `switchLsn`. */
  onPgTimelineChanged: (tli: number, switchLsn: Lsn) => void;
  /** The timeline failed (called once). */
  onFailed: (err: Error) => void;
}

export class TimelineStorage implements AcceptorStorage {
  readonly control: ControlFile;
  failure: Error | undefined;
  private persisted: SafeKeeperInfo | null;
  private segments: WalSegments | undefined;
  private preallocFailing = false;
  /** Parsed history files by PostgreSQL timeline (they never change once stored). */
  private readonly histories = new Map<number, HistoryEntry[]>();
  private ancestryCache: TimelineAncestry | undefined;
  /** A move begun (beginTimeline) whose control file is not written yet. */
  private moving: { tli: number; switchLsn: Lsn } | undefined;

  constructor(private readonly opts: TimelineStorageOptions) {
    this.control = new ControlFile(opts.dir, opts.noSync);
    this.persisted = existsSync(opts.dir) ? this.control.load() : null;
  }

  /** Whether the timeline has a directory (it is created by the first durable write). */
  get onDisk(): boolean {
    return existsSync(this.opts.dir);
  }

  /** The control state as last persisted, or null. */
  get stored(): SafeKeeperInfo | null {
    return this.persisted;
  }

  /** Segments made ahead of time, used, and needed before they were ready (since the files were opened). */
  get preallocation(): { made: number; used: number; missed: number } {
    return this.segments?.preallocStats ?? { made: 0, used: 0, missed: 0 };
  }

  // ---- AcceptorStorage ----

  loadControl(): SafeKeeperInfo | null {
    return this.persisted;
  }

  persistControl(state: SafeKeeperInfo): void {
    this.checkUsable();
    try {
      mkdirDurableSync(this.opts.dir, { noSync: this.opts.noSync });
      this.control.persist(state);
    } catch (err) {
      throw this.ioError(err as Error, 'persist the control file');
    }
    this.persisted = state;
    const moved = this.moving;
    if (moved && state.server.timeline === moved.tli) {
      this.moving = undefined;
      this.opts.onPgTimelineChanged(moved.tli, moved.switchLsn);
    }
  }

  writeWal(lsn: Lsn, bytes: Uint8Array): void {
    this.checkUsable();
    if (bytes.length === 0) return;
    try {
      this.walFiles().write(lsn, bytes);
    } catch (err) {
      throw this.fail(this.ioError(err as Error, `write WAL at ${formatLsn(lsn)}`));
    }
    this.opts.groupCommit.wrote(lsn + BigInt(bytes.length));
    this.opts.stats.writes++;
    this.opts.stats.bytesWritten += bytes.length;
  }

  truncateWal(lsn: Lsn): void {
    this.checkUsable();
    try {
      if (this.onDisk) this.walFiles().truncate(lsn);
    } catch (err) {
      throw this.fail(this.ioError(err as Error, `truncate WAL at ${formatLsn(lsn)}`));
    }
    this.opts.log.info({ lsn: formatLsn(lsn) }, 'WAL truncated');
    this.opts.stats.truncations++;
    this.opts.groupCommit.truncated(lsn);
    this.opts.onTruncated(lsn);
  }

  syncWal(): void {
    this.checkUsable();
    this.opts.groupCommit.syncNow();
  }

  timelineHistory(tli: number): readonly HistoryEntry[] | null {
    const known = this.histories.get(tli);
    if (known) return known;
    const content = readHistoryFile(this.opts.dir, tli);
    if (!content) return null;
    // Stored only after validation: a parse error here is a damaged file, which fails like any read error.
    const entries = parseHistory(content);
    this.histories.set(tli, entries);
    return entries;
  }

  beginTimeline(tli: number, switchLsn: Lsn): void {
    this.checkUsable();
    const state = this.persisted ?? this.opts.currentState();
    const segSize = state.server.walSegSize;
    const offset = isValidWalSegSize(segSize) ? segmentOffset(switchLsn, segSize) : 0;
    this.moving = { tli, switchLsn };
    // The open files may change with the rule; the truncation before made every write durable.
    this.segments?.setTimeline((segno) => this.ancestry().timelineOfSegment(segno, segSize));
    if (offset === 0 || !this.onDisk) return;
    const segno = segmentNumber(switchLsn, segSize);
    const from = this.ancestry().fileName(segno, segSize);
    // Usually `tli` itself; an intermediate timeline's when the move skips one (1 → 3 through 2).
    const to = new TimelineAncestry(tli, this.timelineHistory(tli) ?? []).fileName(segno, segSize);
    try {
      copySegmentPrefix(this.opts.dir, segSize, from, to, offset, { noSync: this.opts.noSync });
    } catch (err) {
      throw this.fail(this.ioError(err as Error, `start PostgreSQL timeline ${tli} at ${formatLsn(switchLsn)}`));
    }
  }

  // ---- timeline history ----

  /** Store the history file of PostgreSQL timeline `tli` (validated by the caller). */
  putHistory(tli: number, content: Uint8Array): 'stored' | 'identical' {
    this.checkUsable();
    const done = storeHistoryFile(this.opts.dir, tli, content, { noSync: this.opts.noSync });
    // A timeline first greeted from timeline `tli` knew no ancestors of it until now.
    if (this.ancestryCache?.timeline === tli) this.ancestryCache = undefined;
    return done;
  }

  /** The stored history file of PostgreSQL timeline `tli`, as bytes; null when none. */
  historyFile(tli: number): Buffer | null {
    return readHistoryFile(this.opts.dir, tli);
  }

  /**
   * The current PostgreSQL timeline and its ancestors: which file holds
   * each segment (wal/timeline-files.ts).
   */
  ancestry(): TimelineAncestry {
    const state = this.persisted ?? this.opts.currentState();
    const tli = state.server.timeline || 1;
    if (this.ancestryCache?.timeline !== tli) this.ancestryCache = new TimelineAncestry(tli, tli > 1 ? (this.timelineHistory(tli) ?? []) : []);
    return this.ancestryCache;
  }

  // ---- files ----

  /** Load-time: make durable whatever WAL the previous process left in the page cache (it may have died before syncing). */
  syncLeftoverWal(): void {
    const state = this.persisted;
    if (this.opts.noSync || !this.onDisk || !state || !isValidWalSegSize(state.server.walSegSize)) return;
    syncLeftoverWal(this.opts.dir, state.server.walSegSize);
  }

  /** Load-time: remove what a history file write interrupted by a crash left. */
  removeHistoryTempFiles(): void {
    if (this.onDisk) removeHistoryTempFiles(this.opts.dir, { noSync: this.opts.noSync });
  }

  /** Load-time: complete names for `.partial` segments the WAL (ending at `walEnd`) has wholly passed. */
  completePassedSegments(walEnd: Lsn): string[] {
    const state = this.persisted;
    if (!this.onDisk || !state || !isValidWalSegSize(state.server.walSegSize)) return [];
    return completePassedSegments(this.opts.dir, this.ancestry(), state.server.walSegSize, walEnd, this.opts.noSync);
  }

  private walFiles(): WalSegments {
    const { dir, name, noSync } = this.opts;
    const state = this.persisted ?? this.opts.currentState();
    const segSize = state.server.walSegSize;
    if (!isValidWalSegSize(segSize)) throw new Error(`no valid WAL segment size known for timeline ${name} (${segSize})`);
    if (this.segments && this.segments.walSegSize !== segSize) {
      throw new Error(`WAL segment size of timeline ${name} changed from ${this.segments.walSegSize} to ${segSize}`);
    }
    if (!this.segments) {
      mkdirDurableSync(dir, { noSync });
      this.segments = new WalSegments({
        dir,
        walSegSize: segSize,
        timeline: (segno) => this.ancestry().timelineOfSegment(segno, segSize),
        noSync,
        preallocate: true,
        mayPreallocate: this.opts.mayPreallocate,
        onPreallocError: (err) => {
          // The synchronous path creates the segment when it is needed (and fails the timeline if that fails too).
          if (!this.preallocFailing) this.opts.log.warn({ err: err.message }, 'could not make the next WAL segment ahead of time; it will be created when needed');
          this.preallocFailing = true;
        },
      });
      this.opts.groupCommit.wal = this.segments;
    }
    return this.segments;
  }

  /** An I/O error with the timeline directory and the failed step in its message (the errno code kept). */
  ioError(err: Error, what: string): Error {
    const code = (err as NodeJS.ErrnoException).code;
    const e = new Error(`could not ${what} in ${this.opts.dir}: ${err.message}`) as NodeJS.ErrnoException;
    if (code) e.code = code;
    return e;
  }

  private checkUsable(): void {
    if (this.failure) throw new TimelineFailedError(this.opts.name, this.failure);
  }

  /** Mark the timeline failed (the first error wins); returns `err`. */
  fail(err: Error): Error {
    if (!this.failure) {
      this.failure = err;
      this.opts.onFailed(err);
    }
    return err;
  }

  /** Close the files once the group commit is idle (the caller waits for that). */
  async close(): Promise<void> {
    const segments = this.segments;
    this.segments = undefined;
    this.opts.groupCommit.wal = undefined;
    segments?.close();
    // A background preallocation finishes (and removes its file) before the directory can go.
    await segments?.settled();
  }
}
