// The background work on every timeline's WAL once it is written: archive
// uploads (uploader.ts), removal of local segments past the horizon
// (horizon.ts), the disk usage the status and the cap read, and readers'
// access to archived segments. One timer for the daemon; every step is
// bounded and nothing here is on the append path.
import type { Logger } from '../log.js';
import { formatLsn, segmentStart, type Lsn } from '../lsn.js';
import { completeSegments, directoryBytes, removeSegmentsOldestFirst } from '../storage/wal-removal.js';
import type { TimelineRegistry } from '../timeline/registry.js';
import { walFootprint } from '../timeline/lifecycle-state.js';
import type { Timeline } from '../timeline/timeline.js';
import { pastKeepTime, removalHorizon, type RetentionSettings } from './horizon.js';
import { objectKey } from './object-format.js';
import type { RemoteStorage } from './remote-storage.js';
import { fetchArchivedFile } from './segment-fetch.js';
import { TimelineUploader } from './uploader.js';

export interface WalLifecycleOptions extends RetentionSettings {
  registry: TimelineRegistry;
  /** The archive; null without --remote-storage. */
  storage: RemoteStorage | null;
  /** --archive-uploads. */
  uploads: number;
  /** --archive-verify-interval in ms. */
  verifyIntervalMs: number;
  log: Logger;
  noSync?: boolean;
  /** How often the timelines are looked at (default 500 ms; a finished upload hands out the next at once). */
  tickMs?: number;
  now?: () => number;
}

export class WalLifecycle {
  private readonly uploaders = new Map<Timeline, TimelineUploader>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly opts: WalLifecycleOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.tickMs ?? 500);
    this.timer.unref();
  }

  /** The uploader of a timeline (tests, status). */
  uploader(tl: Timeline): TimelineUploader | undefined {
    return this.uploaders.get(tl);
  }

  /** One round over every timeline. */
  tick(): void {
    if (this.stopped) return;
    const live = new Set(this.opts.registry.list());
    for (const [tl, up] of this.uploaders) {
      // Deleted: its uploads stop (what is archived stays archived).
      if (!live.has(tl)) {
        this.uploaders.delete(tl);
        void up.stop();
      }
    }
    for (const tl of live) {
      try {
        this.tickTimeline(tl);
      } catch (err) {
        tl.log.warn({ err: (err as Error).message }, 'WAL archive/removal round failed; trying again');
      }
    }
  }

  private tickTimeline(tl: Timeline): void {
    if (tl.localStartLsn === null && tl.onDisk) tl.findLocalStart();
    const storage = this.opts.storage;
    let up: TimelineUploader | undefined;
    if (storage) {
      up = this.uploaders.get(tl);
      if (!up) {
        up = new TimelineUploader({ timeline: tl, storage, uploads: this.opts.uploads, verifyIntervalMs: this.opts.verifyIntervalMs, log: tl.log, now: this.now });
        this.uploaders.set(tl, up);
        tl.fetchArchivedSegment = (segno) => this.fetchSegment(tl, storage, segno);
      }
      up.tick();
    }
    if (!tl.failure) this.removeOldSegments(tl, up ? up.removableBelow : null);
    tl.diskUsageBytes = directoryBytes(tl.dir);
  }

  /** Remove the local segments below the horizon, oldest first, moving the local start first. */
  private removeOldSegments(tl: Timeline, archivedBelow: Lsn | null): void {
    const segSize = tl.walSegSize;
    if (segSize === null || !tl.onDisk || tl.localStartLsn === null) return;
    // At the disk cap (the next segment would not fit) retention for readers yields:
    // otherwise a cap at or below --wal-keep-size would stop appends for good.
    const atCap = tl.maxDiskUsage > 0 && walFootprint(tl.localStartLsn, tl.syncedLsn, segSize) + segSize > tl.maxDiskUsage;
    const horizon = removalHorizon({
      archivedBelow,
      restartLsn: tl.acceptor.state.restartLsn,
      flushLsn: tl.syncedLsn,
      commitLsn: tl.commitLsn,
      walSegSize: segSize,
      keepSize: atCap ? 0 : this.opts.keepSize,
    });
    // An end-of-WAL scan lists the files and then reads them: remove nothing under it.
    if (tl.localStartLsn + BigInt(segSize) > horizon || tl.walScans > 0) return;
    const now = this.now();
    const keepTimeMs = atCap ? 0 : this.opts.keepTimeMs;
    const doomed = [];
    for (const s of completeSegments(tl.dir, segSize, tl.ancestry)) {
      if (segmentStart(s.segno + 1n, segSize) > horizon || !pastKeepTime(s.completedAt, keepTimeMs, now)) break;
      doomed.push(s);
    }
    if (atCap && doomed.length > 0) tl.log.warn({ segments: doomed.length }, 'at the disk cap: WAL kept only for readers (--wal-keep-size, --wal-keep-time) is removed');
    if (doomed.length === 0) return;
    const removed = removeSegmentsOldestFirst(
      tl.dir,
      doomed,
      (segno) => {
        // Readers of this segment go to the archive from now on.
        tl.localStartLsn = segmentStart(segno + 1n, segSize);
      },
      { noSync: this.opts.noSync },
    );
    tl.segmentsRemoved += removed;
    tl.log.info({ removed, localStart: formatLsn(tl.localStartLsn), horizon: formatLsn(horizon) }, 'old WAL segments removed');
  }

  private async fetchSegment(tl: Timeline, storage: RemoteStorage, segno: bigint): Promise<Uint8Array | null> {
    const segSize = tl.walSegSize;
    if (segSize === null || !tl.storedState) return null;
    const name = tl.ancestry.fileName(segno, segSize);
    return fetchArchivedFile(storage, objectKey(tl.key.tenantId, tl.key.timelineId, name));
  }

  /** Stop the timer and the uploads; backup_lsn is written a last time. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.uploaders.values()].map((u) => u.stop()));
    this.uploaders.clear();
  }
}
