// One timeline: wires its storage (the acceptor's control file and WAL
// segments, timeline/acceptor-storage.ts), the group commit that turns many
// WAL writes into one sync (timeline/group-commit.ts), the acceptor running
// on them, and who is attached (timeline/sessions.ts): WAL push sessions are
// told after every sync and send the responses it covers.
import { join } from 'node:path';
import { Acceptor, noHsFeedback } from '../acceptor/index.js';
import type { Logger } from '../log.js';
import { formatLsn, isValidWalSegSize, segmentFloor, type Lsn } from '../lsn.js';
import type { HotStandbyFeedback, SafeKeeperInfo } from '../protocol/types.js';
import { findTimelineWalEnd } from '../wal/resume-scan.js';
import type { WalEndResult } from '../wal/wal-end.js';
import type { TimelineAncestry } from '../wal/timeline-files.js';
import { TimelineStorage, type TimelineStats } from './acceptor-storage.js';
import { GroupCommit } from './group-commit.js';
import { DiskCapError, walFootprint, type ArchiveProgress } from './lifecycle-state.js';
import { localStartLsn } from '../storage/wal-removal.js';
import { keyString, type TimelineKey } from './ids.js';
import { DurabilityListeners, type DurabilityListener, type PushSessionView } from './sessions.js';
import type { SyncPolicy } from './sync-policy.js';

export { TimelineFailedError, type TimelineStats } from './acceptor-storage.js';
export type { DurabilityListener, PushSessionView } from './sessions.js';
export { DiskCapError, newArchiveProgress, type ArchiveProgress } from './lifecycle-state.js';

export interface TimelineOptions {
  /** The daemon's data directory; the timeline lives in <root>/<tenant>/<timeline>. */
  root: string;
  key: TimelineKey;
  noSync?: boolean;
  log: Logger;
  /** Told about syncs and failures (metrics). */
  observer?: TimelineObserver;
  /** Appends that would put more WAL segment bytes than this on disk are refused (0: no cap). */
  maxDiskUsage?: number;
  /** Shared by the daemon's timelines: whether a sync round may block the event loop (default: never). */
  syncPolicy?: SyncPolicy;
}

/** Watches a timeline's storage work (the metrics registry implements it). */
export interface TimelineObserver {
  /** A WAL sync (fdatasync of the written segments) took `seconds`. */
  walSynced?(tl: Timeline, seconds: number): void;
  /** The timeline failed with a storage error. */
  failed?(tl: Timeline, err: Error): void;
}

export class Timeline {
  readonly key: TimelineKey;
  readonly name: string;
  readonly dir: string;
  readonly log: Logger;
  readonly acceptor: Acceptor;
  /** Result of the last end-of-WAL scan. */
  lastScan: WalEndResult | null = null;
  readonly stats: TimelineStats = { appends: 0, writes: 0, bytesWritten: 0, syncs: 0, truncations: 0 };
  /** Hot standby feedback of the timeline's readers (replication fills it in). */
  hsFeedback: HotStandbyFeedback = noHsFeedback();
  /** WAL push sessions currently attached, for the admin API (address, since, progress). */
  readonly pushSessions = new Set<PushSessionView>();
  readonly observer: TimelineObserver | undefined;
  /** Appends beyond this many bytes of segment files are refused (0: no cap). */
  readonly maxDiskUsage: number;
  /**
   * Start of the oldest local WAL segment (null: none yet). Moved past a
   * segment before its file is removed, so readers go to the archive first.
   */
  localStartLsn: Lsn | null = null;
  /** End-of-WAL scans running; old segments are not removed meanwhile. */
  walScans = 0;
  /** End of the contiguous archived prefix, in memory (the control file's copy may lag: see archive/). */
  backupLsn: Lsn = 0n;
  /** Local segments removed since the daemon started. */
  segmentsRemoved = 0;
  /** Bytes of the timeline's files on disk, as last measured. */
  diskUsageBytes = 0;
  /** The archive uploader's state; null without an archive. */
  archive: ArchiveProgress | null = null;
  /** Fetch a whole archived segment (decoded and verified); null when not archived. Set when there is an archive. */
  fetchArchivedSegment: ((segno: bigint) => Promise<Uint8Array | null>) | null = null;

  private readonly storage: TimelineStorage;
  private readonly groupCommit: GroupCommit;
  private readonly listeners = new DurabilityListeners();
  /** The commit_lsn listeners were last told of (the value itself lives in the acceptor state). */
  private announcedCommit: Lsn;

  constructor(opts: TimelineOptions) {
    this.key = opts.key;
    this.name = keyString(opts.key);
    this.dir = join(opts.root, opts.key.tenantId, opts.key.timelineId);
    this.log = opts.log.child({ timeline: this.name });
    this.observer = opts.observer;
    this.maxDiskUsage = opts.maxDiskUsage ?? 0;
    const policy = opts.syncPolicy;
    this.groupCommit = new GroupCommit({
      synced: (synced, seconds, blocking) => {
        this.stats.syncs++;
        policy?.synced(this.name, seconds * 1000, blocking);
        this.observer?.walSynced?.(this, seconds);
        this.listeners.durable(synced);
      },
      mayBlock: policy ? (bytes) => policy.mayBlock(this.name, bytes) : undefined,
      failed: (err) => this.storage.fail(this.storage.ioError(err, 'sync WAL')),
      halted: () => this.storage.failure !== undefined,
    });
    this.storage = new TimelineStorage({
      dir: this.dir,
      name: this.name,
      noSync: opts.noSync ?? false,
      log: this.log,
      groupCommit: this.groupCommit,
      stats: this.stats,
      currentState: () => this.acceptor.state,
      // Under a disk cap the segment made ahead counts too: make it only when it fits.
      mayPreallocate: (segno) => this.fitsDiskCap(segno),
      onTruncated: (lsn) => {
        // WAL rewritten below the local start (never by a correct proposer): find it again from the files.
        if (this.localStartLsn !== null && lsn < this.localStartLsn) this.localStartLsn = null;
        this.listeners.truncated(lsn);
      },
      onPgTimelineChanged: (tli, switchLsn) => {
        this.log.info({ pgTimeline: tli, switchLsn: formatLsn(switchLsn) }, 'WAL moved to a new PostgreSQL timeline');
        this.listeners.pgTimelineChanged(tli, switchLsn);
      },
      onFailed: (err) => {
        this.log.error({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'timeline failed: WAL is suspect, no more acknowledgements until restart');
        this.listeners.failed(err);
        this.observer?.failed?.(this, err);
      },
    });
    this.acceptor = new Acceptor(this.storage, { hsFeedback: () => this.hsFeedback });
    this.announcedCommit = this.acceptor.commitLsn;
    this.backupLsn = this.storage.control.backupLsn;
  }

  /** WAL segment size of the stored state, or null before the first one is persisted. */
  get walSegSize(): number | null {
    const s = this.storage.stored;
    return s && isValidWalSegSize(s.server.walSegSize) ? s.server.walSegSize : null;
  }

  /** backup_lsn as last written to the control file. */
  get persistedBackupLsn(): Lsn {
    return this.storage.control.backupLsn;
  }

  /**
   * Write backup_lsn to the control file. False (logged) when it cannot be
   * written: nothing depends on it but a faster restart of the uploads.
   */
  persistBackupLsn(lsn: Lsn): boolean {
    const state = this.storage.stored;
    if (!state || this.failure || lsn === this.storage.control.backupLsn) return true;
    try {
      this.storage.control.persist(state, lsn);
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not persist backup_lsn; it is kept in memory and written later');
      return false;
    }
  }

  /** Read where the local WAL starts from the segment files on disk. */
  findLocalStart(): Lsn | null {
    const segSize = this.walSegSize;
    if (segSize === null) return null;
    this.localStartLsn = localStartLsn(this.dir, segSize, this.ancestry);
    return this.localStartLsn;
  }

  /** Before an append of [beginLsn, endLsn): throws DiskCapError when its WAL would take more than the cap. */
  /** Whether every segment from the local start through `segno` fits under --max-timeline-disk-usage. */
  private fitsDiskCap(segno: bigint): boolean {
    if (this.maxDiskUsage <= 0) return true;
    const segSize = this.walSegSize ?? this.acceptor.state.server.walSegSize;
    if (!isValidWalSegSize(segSize) || this.localStartLsn === null) return false;
    const segmentEnd = (segno + 1n) * BigInt(segSize);
    return walFootprint(this.localStartLsn, segmentEnd, segSize) <= this.maxDiskUsage;
  }

  checkDiskCap(beginLsn: Lsn, endLsn: Lsn): void {
    if (endLsn <= beginLsn) return;
    const segSize = this.walSegSize ?? this.acceptor.state.server.walSegSize;
    if (!isValidWalSegSize(segSize)) return;
    // A timeline without local WAL starts where its first append does.
    const start = (this.localStartLsn ??= segmentFloor(beginLsn, segSize));
    if (this.maxDiskUsage <= 0) return;
    const usage = walFootprint(start, endLsn, segSize);
    if (usage > this.maxDiskUsage) throw new DiskCapError(this.name, usage, this.maxDiskUsage);
  }

  /** The storage error that failed the timeline; set directly to stop writes without telling anyone (a deletion). */
  get failure(): Error | undefined {
    return this.storage.failure;
  }

  set failure(err: Error | undefined) {
    this.storage.failure = err;
  }

  /** Whether the timeline has a directory (it is created by the first durable write). */
  get onDisk(): boolean {
    return this.storage.onDisk;
  }

  /**
   * Store the history file of PostgreSQL timeline `tli` (PUT_TIMELINE_HISTORY,
   * already validated): 'identical' when that content is stored already;
   * HistoryConflictError when other content is.
   */
  putHistory(tli: number, content: Uint8Array): 'stored' | 'identical' {
    return this.storage.putHistory(tli, content);
  }

  /** The stored history file of PostgreSQL timeline `tli`; null when none. */
  historyFile(tli: number): Buffer | null {
    return this.storage.historyFile(tli);
  }

  /** The current PostgreSQL timeline and its ancestors: which file holds each segment. */
  get ancestry(): TimelineAncestry {
    return this.storage.ancestry();
  }

  /** Stored server info, if any: segment size and PostgreSQL timeline. */
  get storedState(): SafeKeeperInfo | null {
    return this.storage.stored;
  }

  /** End of the WAL that is durable here. */
  get syncedLsn(): Lsn {
    return this.groupCommit.syncedLsn;
  }

  /** Highest commit_lsn a proposer reported (the acceptor state's). */
  get commitLsn(): Lsn {
    return this.acceptor.commitLsn;
  }

  /** Segments made ahead of time, used, and needed before they were ready (since the files were opened). */
  get preallocation(): { made: number; used: number; missed: number } {
    return this.storage.preallocation;
  }

  // ---- end of WAL ----

  /**
   * Find the end of the local WAL with the scanner, starting from the
   * segment of the stored commit position when there is one. 0 when the
   * timeline has no segments.
   */
  async scanWalEnd(walSegSizeHint?: number): Promise<Lsn> {
    const state = this.storage.stored;
    const segSize = state && isValidWalSegSize(state.server.walSegSize) ? state.server.walSegSize : walSegSizeHint;
    this.lastScan = null;
    if (this.onDisk && segSize !== undefined && isValidWalSegSize(segSize)) {
      // The scan lists the segment files, then reads them: no removal in between.
      this.walScans++;
      try {
        this.lastScan = await findTimelineWalEnd(this.dir, { walSegSize: segSize, ancestry: state ? this.ancestry : undefined, commitLsn: state?.commitLsn ?? 0n });
      } finally {
        this.walScans--;
      }
    }
    return this.lastScan?.endLsn ?? 0n;
  }

  /** Load-time preparation: make the WAL a previous process left durable, then find its end. */
  async load(): Promise<Lsn> {
    this.storage.syncLeftoverWal();
    this.storage.removeHistoryTempFiles();
    const end = await this.scanWalEnd();
    const completed = this.storage.completePassedSegments(end);
    if (completed.length > 0) this.log.info({ segments: completed }, 'segments the WAL has passed were still named .partial; renamed to complete');
    this.groupCommit.reset(end);
    this.findLocalStart();
    return end;
  }

  // ---- group commit ----

  subscribe(l: DurabilityListener): () => void {
    return this.listeners.add(l);
  }

  /** Ask that everything written so far (and at least `through`) becomes durable. */
  requestSync(through: Lsn = 0n): void {
    this.groupCommit.request(through);
  }

  /** Resolves once no sync is running (all writes so far durable when it resolves after a requestSync). */
  quiesce(): Promise<void> {
    return this.groupCommit.quiesce();
  }

  /** After an append carrying `commitLsn`: listeners hear of a commit_lsn that moved. */
  noteCommit(commitLsn: Lsn): void {
    if (commitLsn <= this.announcedCommit) return;
    this.announcedCommit = commitLsn;
    this.listeners.committed(commitLsn);
  }

  /** Finish in-flight syncs and close the files. */
  async close(): Promise<void> {
    try {
      await this.quiesce();
    } catch {
      /* failure already recorded */
    }
    await this.storage.close();
  }
}
