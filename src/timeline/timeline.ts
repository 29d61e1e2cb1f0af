// One timeline: wires its storage (the acceptor's control file and WAL
// segments, timeline/acceptor-storage.ts), the group commit that turns many
// WAL writes into one sync (timeline/group-commit.ts), the acceptor running
// on them, and who is attached (timeline/sessions.ts): WAL push sessions are
// told after every sync and send the responses it covers.
import { join } from 'node:path';
import { Acceptor, noHsFeedback } from '../acceptor/index.js';
import type { Logger } from '../log.js';
import { isValidWalSegSize, type Lsn } from '../lsn.js';
import type { HotStandbyFeedback, SafeKeeperInfo } from '../protocol/types.js';
import { findTimelineWalEnd } from '../wal/resume-scan.js';
import type { WalEndResult } from '../wal/wal-end.js';
import { TimelineStorage, type TimelineStats } from './acceptor-storage.js';
import { GroupCommit } from './group-commit.js';
import { keyString, type TimelineKey } from './ids.js';
import { DurabilityListeners, type DurabilityListener, type PushSessionView } from './sessions.js';

export { TimelineFailedError, type TimelineStats } from './acceptor-storage.js';
export type { DurabilityListener, PushSessionView } from './sessions.js';

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
    this.groupCommit = new GroupCommit({
      synced: (synced, seconds) => {
        this.stats.syncs++;
        this.observer?.walSynced?.(this, seconds);
        this.listeners.durable(synced);
      },
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
      onTruncated: (lsn) => this.listeners.truncated(lsn),
      onFailed: (err) => {
        this.log.error({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'timeline failed: WAL is suspect, no more acknowledgements until restart');
        this.listeners.failed(err);
        this.observer?.failed?.(this, err);
      },
    });
    this.acceptor = new Acceptor(this.storage, { hsFeedback: () => this.hsFeedback });
    this.announcedCommit = this.acceptor.commitLsn;
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
      this.lastScan = await findTimelineWalEnd(this.dir, { walSegSize: segSize, timeline: state?.server.timeline || undefined, commitLsn: state?.commitLsn ?? 0n });
    }
    return this.lastScan?.endLsn ?? 0n;
  }

  /** Load-time preparation: make the WAL a previous process left durable, then find its end. */
  async load(): Promise<Lsn> {
    this.storage.syncLeftoverWal();
    const end = await this.scanWalEnd();
    this.groupCommit.reset(end);
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
