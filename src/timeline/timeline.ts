// One timeline: its directory, control file and WAL segments (the
// AcceptorStorage the consensus core runs on), the acceptor itself, and the
// group commit that turns many WAL writes into one sync.
//
// Durability bookkeeping: `written` is the end of the WAL written by this
// process, `synced` the position through which every write is durable. A
// sync started when `written` is W moves `synced` to W once it completes;
// writes that arrive while it runs are covered by the next single sync.
// Listeners (the WAL push sessions) are told after every sync and send the
// responses it covers. An I/O error fails the timeline: nothing more is
// acknowledged on it until the daemon restarts.
import { existsSync, fsyncSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Acceptor } from '../acceptor/index.js';
import type { AcceptorStorage } from '../acceptor/storage.js';
import type { Logger } from '../log.js';
import { formatLsn, isValidWalSegSize, segmentFloor, segmentNumber, type Lsn } from '../lsn.js';
import type { HotStandbyFeedback, SafeKeeperInfo } from '../protocol/types.js';
import { U64_MAX } from '../protocol/layout.js';
import { ControlFile } from '../storage/control.js';
import { mkdirDurableSync, fsyncDirSync } from '../storage/fsutil.js';
import { listSegmentFiles, WalSegments } from '../storage/segments.js';
import { findWalEnd, type WalEndResult } from '../wal/wal-end.js';
import { keyString, type TimelineKey } from './ids.js';

export interface TimelineOptions {
  /** The daemon's data directory; the timeline lives in <root>/<tenant>/<timeline>. */
  root: string;
  key: TimelineKey;
  noSync?: boolean;
  log: Logger;
  /** Told about syncs and failures (metrics). */
  observer?: TimelineObserver;
}

/** Watches a timeline's storage work (the metrics registry implements it). */
export interface TimelineObserver {
  /** A WAL sync (fdatasync of the written segments) took `seconds`. */
  walSynced?(tl: Timeline, seconds: number): void;
  /** The timeline failed with a storage error. */
  failed?(tl: Timeline, err: Error): void;
}

/** A WAL push session attached to a timeline, as the admin API shows it. */
export interface PushSessionView {
  /** The proposer's address, "host:port". */
  readonly address: string;
  readonly since: Date;
  /** WAL requests received (the end-of-stream request not counted). */
  readonly appends: number;
  /** WAL bytes received. */
  readonly walBytes: number;
  /** End the session with a FATAL error carrying `message`. */
  disconnect(message: string): void;
}

/** Told about durability progress; implemented by WAL push sessions. */
export interface DurabilityListener {
  /** Every write up to `synced` is durable. */
  durable(synced: Lsn): void;
  /** WAL from `lsn` on was discarded (a newer proposer rewrote it). */
  truncated(lsn: Lsn): void;
  /** The timeline failed (I/O error); nothing more will become durable. */
  failed(err: Error): void;
  /** A proposer reported a higher commit_lsn (also when no WAL moved). */
  committed?(commitLsn: Lsn): void;
}

export class TimelineFailedError extends Error {
  constructor(
    readonly timeline: string,
    readonly cause: Error,
  ) {
    super(`timeline ${timeline} is unavailable after a storage error (${cause.message}); its WAL is suspect until the safekeeper is restarted and rescans it`);
    this.name = 'TimelineFailedError';
  }
}

/** No hot standby feedback yet: xmin values "none". */
export function noFeedback(): HotStandbyFeedback {
  return { ts: 0n, xmin: U64_MAX, catalogXmin: U64_MAX };
}

export interface TimelineStats {
  /** WAL requests of WAL push sessions (the end-of-stream request not counted). */
  appends: number;
  writes: number;
  bytesWritten: number;
  syncs: number;
  truncations: number;
}

export class Timeline implements AcceptorStorage {
  readonly key: TimelineKey;
  readonly name: string;
  readonly dir: string;
  readonly noSync: boolean;
  readonly log: Logger;
  readonly control: ControlFile;
  readonly acceptor: Acceptor;
  /** Result of the last end-of-WAL scan. */
  lastScan: WalEndResult | null = null;
  /** End of WAL as last scanned (0 when there is none). */
  walEnd: Lsn = 0n;
  failure: Error | undefined;
  readonly stats: TimelineStats = { appends: 0, writes: 0, bytesWritten: 0, syncs: 0, truncations: 0 };
  /** Hot standby feedback of the timeline's readers (replication fills it in). */
  hsFeedback: HotStandbyFeedback = noFeedback();
  /** Highest commit_lsn seen from a proposer. */
  commitLsn: Lsn = 0n;
  /** WAL push sessions currently attached. */
  activeSessions = 0;
  /** The same sessions, for the admin API (address, since, progress). */
  readonly pushSessions = new Set<PushSessionView>();
  readonly observer: TimelineObserver | undefined;

  private segments: WalSegments | undefined;
  private persisted: SafeKeeperInfo | null;
  private written: Lsn = 0n;
  private synced: Lsn = 0n;
  /** Highest position some listener waits for (≥ written when a response covers WAL from before this process). */
  private wanted: Lsn = 0n;
  private gen = 0;
  private syncing: Promise<void> | undefined;
  private readonly listeners = new Set<DurabilityListener>();
  private preallocFailing = false;

  constructor(opts: TimelineOptions) {
    this.key = opts.key;
    this.name = keyString(opts.key);
    this.dir = join(opts.root, opts.key.tenantId, opts.key.timelineId);
    this.noSync = opts.noSync ?? false;
    this.log = opts.log.child({ timeline: this.name });
    this.observer = opts.observer;
    this.control = new ControlFile(this.dir, this.noSync);
    this.persisted = existsSync(this.dir) ? this.control.load() : null;
    if (this.persisted) this.commitLsn = this.persisted.commitLsn;
    this.acceptor = new Acceptor(this, { hsFeedback: () => this.hsFeedback });
  }

  /** Whether the timeline has a directory (it is created by the first durable write). */
  get onDisk(): boolean {
    return existsSync(this.dir);
  }

  /** Stored server info, if any: segment size and PostgreSQL timeline. */
  get storedState(): SafeKeeperInfo | null {
    return this.persisted;
  }

  get writtenLsn(): Lsn {
    return this.written;
  }

  get syncedLsn(): Lsn {
    return this.synced;
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
      mkdirDurableSync(this.dir, { noSync: this.noSync });
      this.control.persist(state);
    } catch (err) {
      throw this.ioError(err as Error, 'persist the control file');
    }
    this.persisted = state;
  }

  writeWal(lsn: Lsn, bytes: Uint8Array): void {
    this.checkUsable();
    if (bytes.length === 0) return;
    try {
      this.walFiles().write(lsn, bytes);
    } catch (err) {
      throw this.fail(this.ioError(err as Error, `write WAL at ${formatLsn(lsn)}`));
    }
    const end = lsn + BigInt(bytes.length);
    if (end > this.written) this.written = end;
    this.stats.writes++;
    this.stats.bytesWritten += bytes.length;
  }

  truncateWal(lsn: Lsn): void {
    this.checkUsable();
    try {
      if (this.onDisk) this.walFiles().truncate(lsn);
    } catch (err) {
      throw this.fail(this.ioError(err as Error, `truncate WAL at ${formatLsn(lsn)}`));
    }
    this.log.info({ lsn: formatLsn(lsn) }, 'WAL truncated');
    this.stats.truncations++;
    // Everything below the cut was synced by the truncation; an in-flight sync no longer counts.
    this.gen++;
    this.written = lsn;
    this.synced = lsn;
    this.wanted = lsn;
    if (this.walEnd > lsn) this.walEnd = lsn;
    for (const l of [...this.listeners]) l.truncated(lsn);
  }

  syncWal(): void {
    this.checkUsable();
    if (!this.segments) return;
    const t0 = performance.now();
    try {
      this.segments.syncNow();
    } catch (err) {
      throw this.fail(this.ioError(err as Error, 'sync WAL'));
    }
    this.stats.syncs++;
    this.observer?.walSynced?.(this, (performance.now() - t0) / 1000);
    if (this.written > this.synced) this.synced = this.written;
    const synced = this.synced;
    for (const l of [...this.listeners]) l.durable(synced);
  }

  // ---- files ----

  private walFiles(): WalSegments {
    const state = this.persisted ?? this.acceptor.state;
    const segSize = state.server.walSegSize;
    const tli = state.server.timeline || 1;
    if (!isValidWalSegSize(segSize)) throw new Error(`no valid WAL segment size known for timeline ${this.name} (${segSize})`);
    if (this.segments && this.segments.walSegSize !== segSize) {
      throw new Error(`WAL segment size of timeline ${this.name} changed from ${this.segments.walSegSize} to ${segSize}`);
    }
    if (!this.segments) {
      mkdirDurableSync(this.dir, { noSync: this.noSync });
      this.segments = new WalSegments({
        dir: this.dir,
        walSegSize: segSize,
        timeline: tli,
        noSync: this.noSync,
        preallocate: true,
        onPreallocError: (err) => {
          // The synchronous path creates the segment when it is needed (and fails the timeline if that fails too).
          if (!this.preallocFailing) this.log.warn({ err: err.message }, 'could not make the next WAL segment ahead of time; it will be created when needed');
          this.preallocFailing = true;
        },
      });
    } else if (this.segments.timeline !== tli) {
      this.segments.setTimeline(tli);
    }
    return this.segments;
  }

  private ioError(err: Error, what: string): Error {
    const code = (err as NodeJS.ErrnoException).code;
    const e = new Error(`could not ${what} in ${this.dir}: ${err.message}`) as NodeJS.ErrnoException;
    if (code) e.code = code;
    return e;
  }

  private checkUsable(): void {
    if (this.failure) throw new TimelineFailedError(this.name, this.failure);
  }

  /** Mark the timeline failed: every waiter is told, nothing more is acknowledged. */
  fail(err: Error): Error {
    if (!this.failure) {
      this.failure = err;
      this.log.error({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'timeline failed: WAL is suspect, no more acknowledgements until restart');
      for (const l of [...this.listeners]) l.failed(err);
      this.observer?.failed?.(this, err);
    }
    return err;
  }

  // ---- end of WAL ----

  /**
   * Find the end of the local WAL with the scanner, starting from the
   * segment of the stored commit position when there is one. 0 when the
   * timeline has no segments.
   */
  async scanWalEnd(walSegSizeHint?: number): Promise<Lsn> {
    const state = this.persisted;
    const segSize = state && isValidWalSegSize(state.server.walSegSize) ? state.server.walSegSize : walSegSizeHint;
    if (!this.onDisk || segSize === undefined || !isValidWalSegSize(segSize)) {
      this.walEnd = 0n;
      this.lastScan = null;
      return 0n;
    }
    const files = listSegmentFiles(this.dir, segSize);
    const tli = state?.server.timeline || undefined;
    const mine = files.filter((f) => tli === undefined || f.timeline === tli);
    if (mine.length === 0) {
      this.walEnd = 0n;
      this.lastScan = null;
      return 0n;
    }
    // Start at the segment of the stored commit position when every segment
    // before it is present and complete (a scan from there finds the same end);
    // otherwise scan everything from the lowest segment.
    let startLsn: Lsn | undefined;
    if (state && state.commitLsn > 0n) {
      const segno = segmentNumber(state.commitLsn, segSize);
      const lowest = mine.reduce((m, f) => (f.segno < m ? f.segno : m), segno);
      let contiguous = lowest < segno && mine.some((f) => f.segno === segno);
      for (let s = lowest; contiguous && s < segno; s++) {
        contiguous = mine.some((f) => f.segno === s && !f.partial) && !mine.some((f) => f.segno === s && f.partial);
      }
      if (contiguous) startLsn = segmentFloor(state.commitLsn, segSize);
    }
    const result = await findWalEnd(this.dir, { walSegSize: segSize, timeline: tli, ...(startLsn !== undefined ? { startLsn } : {}) });
    this.lastScan = result;
    this.walEnd = result.endLsn;
    return result.endLsn;
  }

  /**
   * Load-time preparation: make whatever WAL the previous process left in the
   * page cache durable (it may have died before syncing), then find the end.
   */
  async load(): Promise<Lsn> {
    if (this.onDisk && !this.noSync) this.syncExistingFiles();
    const end = await this.scanWalEnd();
    this.written = this.synced = this.wanted = end;
    return end;
  }

  private syncExistingFiles(): void {
    const state = this.persisted;
    if (!state || !isValidWalSegSize(state.server.walSegSize)) return;
    const files = listSegmentFiles(this.dir, state.server.walSegSize);
    const highest = files.reduce((m, f) => (f.segno > m ? f.segno : m), -1n);
    for (const f of files) {
      if (!f.partial && f.segno !== highest) continue;
      const fd = openSync(join(this.dir, f.file), 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    fsyncDirSync(this.dir);
  }

  // ---- group commit ----

  subscribe(l: DurabilityListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Ask that everything written so far (and at least `through`) becomes durable. */
  requestSync(through: Lsn = 0n): void {
    if (through > this.wanted) this.wanted = through;
    if (this.syncing || this.failure) return;
    const target = this.written > this.wanted ? this.written : this.wanted;
    if (target <= this.synced && !this.segments?.needsSync) return;
    const gen = this.gen;
    const t0 = performance.now();
    const started = this.segments ? this.segments.sync() : Promise.resolve();
    this.syncing = started.then(
      () => {
        this.syncing = undefined;
        this.stats.syncs++;
        this.observer?.walSynced?.(this, (performance.now() - t0) / 1000);
        if (gen === this.gen && target > this.synced) this.synced = target;
        const synced = this.synced;
        for (const l of [...this.listeners]) l.durable(synced);
        if (this.written > this.synced || this.wanted > this.synced) this.requestSync();
      },
      (err: Error) => {
        this.syncing = undefined;
        this.fail(this.ioError(err, 'sync WAL'));
      },
    );
  }

  /** Resolves once no sync is running (all writes so far durable when it resolves after a requestSync). */
  async quiesce(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if (this.written > this.synced && !this.failure) this.requestSync();
      const s = this.syncing;
      if (!s) return;
      await s;
    }
  }

  noteCommit(commitLsn: Lsn): void {
    if (commitLsn <= this.commitLsn) return;
    this.commitLsn = commitLsn;
    for (const l of [...this.listeners]) l.committed?.(commitLsn);
  }

  /** Finish in-flight syncs and close the files. */
  async close(): Promise<void> {
    try {
      await this.quiesce();
    } catch {
      /* failure already recorded */
    }
    const segments = this.segments;
    this.segments = undefined;
    segments?.close();
    // A background preallocation finishes (and removes its file) before the directory can go.
    await segments?.settled();
  }
}
