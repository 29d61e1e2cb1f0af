// The port between the replication side and whatever holds the WAL: a
// timeline of the daemon, or a plain directory of segment files (tests,
// tools). The sender only ever talks to a WalSource; wiring it to the
// daemon's Timeline is an adapter of a few lines.
import type { Lsn } from '../lsn.js';
import { U64_MAX } from '../protocol/layout.js';
import type { HotStandbyFeedback } from '../protocol/types.js';

/** What a reader reported in its last standby status update ('r'). */
export interface ReaderStatus {
  /** Received and written. */
  writeLsn: Lsn;
  /** Durable on the reader; 0 = not reported (pg_receivewal without --slot/--synchronous). */
  flushLsn: Lsn;
  /** Replayed; 0 = not reported. */
  applyLsn: Lsn;
  /** The reader's clock, µs since 2000-01-01 UTC. */
  clientTime: bigint;
}

/** Who is reading, known when the stream starts. */
export interface ReaderInfo {
  applicationName: string;
  /** Remote address as "host:port". */
  address: string;
  /** Slot name given in START_REPLICATION, if any (walkeeper keeps no slots; informational). */
  slotName?: string;
  startLsn: Lsn;
  /** PostgreSQL timeline the reader asked for. */
  timeline: number;
}

/** A registered reader: the sender reports through it while the stream runs. */
export interface ReaderHandle {
  /** WAL up to `lsn` has been handed to the socket. */
  sent(lsn: Lsn): void;
  /** A standby status update arrived. */
  update(status: ReaderStatus): void;
  /** Hot standby feedback arrived (full 64-bit xids; U64_MAX = none). */
  feedback(hs: HotStandbyFeedback): void;
  /** The stream ended; the reader's feedback no longer counts. Idempotent. */
  detach(): void;
}

export type WaitTarget = 'commit' | 'flush';

/**
 * A reader of stored WAL for one stream: the same contract as
 * WalSource.read(), but it may keep segment files open between calls.
 * close() releases them; the stream calls it when it ends.
 */
export interface WalReader {
  read(lsn: Lsn, buf: Uint8Array): number | Promise<number>;
  /** Changes whenever stored WAL was rewritten since: bytes read before may be stale. */
  readonly generation?: number;
  close(): void;
}

export interface WalSource {
  /** PostgreSQL system identifier of the WAL served. */
  readonly systemId: bigint;
  /** PostgreSQL timeline (TimeLineID) of the WAL served. */
  readonly pgTimeline: number;
  /** WAL segment size in bytes. */
  readonly walSegSize: number;
  /** server_version_num of the PostgreSQL that wrote the WAL (e.g. 150004); 0 if unknown. */
  readonly pgVersion: number;
  /** WAL known to be on a quorum: what ordinary readers may see. */
  commitLsn(): Lsn;
  /** End of the WAL stored here (may be ahead of commit). */
  flushLsn(): Lsn;
  /**
   * Copy stored WAL starting at `lsn` into `buf`. Reads from one segment
   * (`<name>.partial` first, then `<name>`); returns the number of bytes
   * copied, at least 1 and at most min(buf.length, bytes left in that
   * segment). Only called for positions below flushLsn(). Throws
   * WalSegmentMissingError when the segment is not there, WalReadError on
   * other failures.
   */
  read(lsn: Lsn, buf: Uint8Array): number | Promise<number>;
  /**
   * Resolves once commitLsn() (or flushLsn()) is greater than `lsn`, at
   * once if it already is; also resolves (does not reject) when `signal`
   * aborts. Woken by the append path, never by polling.
   */
  waitFor(lsn: Lsn, which: WaitTarget, signal: AbortSignal): Promise<void>;
  /** Register a reader for progress and hot standby feedback. */
  attachReader(info: ReaderInfo): ReaderHandle;
  /**
   * Where PostgreSQL timeline `tli` ended in the history of the current
   * one, and the timeline after it; null while `tli` is current (or not an
   * ancestor). Looked at while a stream runs: a stream on a timeline that
   * became historic ends at its switch point.
   */
  timelineFork?(tli: number): { switchpoint: Lsn; nextTli: number } | null;
  /** Contents of `%08X.history` for timeline `tli`, or null when there is none. */
  timelineHistory?(tli: number): Uint8Array | null | Promise<Uint8Array | null>;
  /**
   * A reader for one stream that keeps its segment files open (optional;
   * without it the stream calls read()). The source must drop what such a
   * reader keeps open whenever stored WAL is rewritten (a truncation).
   */
  openReader?(): WalReader;
}

/** The segment holding a requested position is not stored (removed, or never written). */
export class WalSegmentMissingError extends Error {
  override readonly name = 'WalSegmentMissingError';
  constructor(
    /** 24-hex-digit segment file name. */
    readonly segmentName: string,
  ) {
    super(`requested WAL segment ${segmentName} has already been removed`);
  }
}

/** Reading stored WAL failed for another reason (I/O error, short file). */
export class WalReadError extends Error {
  override readonly name = 'WalReadError';
  constructor(
    readonly segmentName: string,
    readonly offset: number,
    message: string,
    /** True when the file is there but has fewer bytes than it must. */
    readonly short = false,
  ) {
    super(message);
  }
}

// ---- hot standby feedback ----

/** Feedback meaning "nothing to hold back". */
export function emptyHsFeedback(): HotStandbyFeedback {
  return { ts: 0n, xmin: U64_MAX, catalogXmin: U64_MAX };
}

/**
 * Combine readers' feedback: newest ts, minimum xmin and catalog_xmin.
 * With no readers: ts 0, xmin and catalog_xmin u64::MAX.
 */
export function combineHsFeedback(all: Iterable<HotStandbyFeedback>): HotStandbyFeedback {
  const acc = emptyHsFeedback();
  for (const hs of all) {
    if (hs.ts > acc.ts) acc.ts = hs.ts;
    if (hs.xmin < acc.xmin) acc.xmin = hs.xmin;
    if (hs.catalogXmin < acc.catalogXmin) acc.catalogXmin = hs.catalogXmin;
  }
  return acc;
}

/** A reader as the registry sees it (for the admin API and metrics). */
export interface ReaderSnapshot extends ReaderInfo {
  id: number;
  attachedAt: Date;
  sentLsn: Lsn;
  status: ReaderStatus | null;
  /** Highest "flush if reported, else write" seen from this reader. */
  replicatedLsn: Lsn;
  feedback: HotStandbyFeedback | null;
}

/**
 * The readers of one timeline, with their progress and feedback. A WalSource
 * implementation keeps one and hands out its handles from attachReader();
 * hsFeedback() is what goes into the next SafeKeeperResponse.
 */
export class ReaderRegistry {
  private nextId = 1;
  private readonly readers = new Map<number, ReaderSnapshot>();

  constructor(private readonly onFeedbackChange?: (hs: HotStandbyFeedback) => void) {}

  attach(info: ReaderInfo): ReaderHandle {
    const id = this.nextId++;
    const entry: ReaderSnapshot = {
      ...info,
      id,
      attachedAt: new Date(),
      sentLsn: info.startLsn,
      status: null,
      replicatedLsn: 0n,
      feedback: null,
    };
    this.readers.set(id, entry);
    let attached = true;
    return {
      sent: (lsn) => {
        if (attached && lsn > entry.sentLsn) entry.sentLsn = lsn;
      },
      update: (status) => {
        if (!attached) return;
        entry.status = { ...status };
        const replicated = status.flushLsn !== 0n ? status.flushLsn : status.writeLsn;
        if (replicated > entry.replicatedLsn) entry.replicatedLsn = replicated;
      },
      feedback: (hs) => {
        if (!attached) return;
        entry.feedback = { ...hs };
        this.onFeedbackChange?.(this.hsFeedback());
      },
      detach: () => {
        if (!attached) return;
        attached = false;
        this.readers.delete(id);
        if (entry.feedback) this.onFeedbackChange?.(this.hsFeedback());
      },
    };
  }

  /** Combined feedback of the attached readers (u64::MAX xmins when none reported). */
  hsFeedback(): HotStandbyFeedback {
    const all: HotStandbyFeedback[] = [];
    for (const r of this.readers.values()) if (r.feedback) all.push(r.feedback);
    return combineHsFeedback(all);
  }

  get size(): number {
    return this.readers.size;
  }

  /** Copies of the attached readers' state. */
  list(): ReaderSnapshot[] {
    return [...this.readers.values()].map((r) => ({
      ...r,
      status: r.status ? { ...r.status } : null,
      feedback: r.feedback ? { ...r.feedback } : null,
    }));
  }
}
