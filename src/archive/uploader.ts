// The archive uploader of one timeline (docs/protocol.md §15.2).
//
// * Only whole segments wholly below commit_lsn (and durable here) are
//   uploaded: WAL above commit_lsn may still be rewritten by a new term.
//   Committed segments are byte-identical on every safekeeper, so all of
//   them may upload: each upload first looks for the object and counts an
//   identical one as archived. A different one is a conflict: logged,
//   counted, shown in the status, never overwritten, and the prefix stops
//   before it.
// * Several uploads run at once; backup_lsn (the timeline's) moves over the
//   contiguous prefix of finished ones and is written to the control file at
//   most once per `persistEveryMs` (a control-file write per segment would
//   cost a sync each under load). Removal reads the in-memory value: it
//   never waits for a write that may need disk space.
// * Failures retry with backoff (100 ms doubling to 10 s); nothing here
//   blocks appends: files are read, hashed and compressed asynchronously.
// * Every `verifyIntervalMs`, archived segments still on local disk are
//   checked again: a missing object is uploaded again, a different one is a
//   conflict. Timeline history files are archived once and never replaced.
import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { formatLsn, segmentNumber, segmentStart, type Lsn } from '../lsn.js';
import { listSegmentFiles } from '../wal/segment-files.js';
import { newArchiveProgress, type ArchiveProgress, type Timeline } from '../timeline/timeline.js';
import { describedFile, encodeObject, objectKey, sha256HexAsync, type ObjectEncoding } from './object-format.js';
import type { RemoteStorage } from './remote-storage.js';

export interface UploaderOptions {
  timeline: Timeline;
  storage: RemoteStorage;
  /** Uploads in flight at most (--archive-uploads). */
  uploads: number;
  /** --archive-verify-interval in ms. */
  verifyIntervalMs: number;
  log: Logger;
  encoding?: ObjectEncoding;
  /** Write backup_lsn to the control file at most this often (default 1 s). */
  persistEveryMs?: number;
  now?: () => number;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 10_000;
const HISTORY_FILE = /^[0-9A-F]{8}\.history$/;
/** XLogLongPageHeaderData: xlp_magic at 0 (u16), xlp_pageaddr at 8 (u64). */
const PAGE_ADDR_OFFSET = 8;

type Outcome = 'uploaded' | 'present' | 'conflict';

export class TimelineUploader {
  readonly progress: ArchiveProgress;
  private readonly tl: Timeline;
  private readonly storage: RemoteStorage;
  private readonly encoding: ObjectEncoding;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  /** Segment size once the timeline has one; the uploader starts then. */
  private segSize: number | null = null;
  /** Next segment to hand out. */
  private next = 0n;
  /**
   * End of the contiguous prefix known archived, or where the archive starts
   * before anything is: the timeline's backup_lsn follows it once a segment
   * is confirmed archived (until then backup_lsn says 0/0).
   */
  private cursor = 0n;
  private readonly inflight = new Set<Promise<void>>();
  private readonly busy = new Set<bigint>();
  /** Finished above the contiguous prefix. */
  private readonly done = new Set<bigint>();
  /** Failed: tried again (lowest first) after the backoff. */
  private readonly retry = new Set<bigint>();
  /** Segments whose object differs (segno → file name). */
  private readonly conflicting = new Map<bigint, string>();
  private backoffMs = BACKOFF_MIN_MS;
  private retryAt = 0;
  private lastPersist = 0;
  private lastVerify: number;
  private verifying: Promise<void> | null = null;
  private readonly historyArchived = new Set<string>();
  private historyBusy: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly opts: UploaderOptions) {
    this.tl = opts.timeline;
    this.storage = opts.storage;
    this.encoding = opts.encoding ?? 'zstd';
    this.now = opts.now ?? Date.now;
    this.lastVerify = this.now();
    this.progress = newArchiveProgress(opts.storage.description);
    this.tl.archive = this.progress;
  }

  /** Where removal may go: backup_lsn, or the first conflicting segment if lower (its local copy is kept). */
  get removableBelow(): Lsn {
    let h = this.tl.backupLsn; // 0 until something is archived: nothing removable yet
    if (this.segSize !== null) for (const segno of this.conflicting.keys()) if (segmentStart(segno, this.segSize) < h) h = segmentStart(segno, this.segSize);
    return h;
  }

  /** Hand out work: called periodically and when commit_lsn moves. Never blocks. */
  tick(): void {
    if (this.stopped || this.tl.failure) return;
    if (this.segSize === null && !this.begin()) return;
    const segSize = this.segSize!;
    const now = this.now();
    this.persistBackupLsn(now, false);
    // After a failure nothing new starts before the backoff is over: an unreachable archive is tried at its pace.
    const backingOff = now < this.retryAt;
    if (!backingOff && this.retry.size > 0) {
      for (const segno of [...this.retry].sort((a, b) => (a < b ? -1 : 1))) {
        if (this.inflight.size >= this.opts.uploads) break;
        this.retry.delete(segno);
        this.startSegment(segno);
      }
    }
    const limit = this.tl.commitLsn < this.tl.syncedLsn ? this.tl.commitLsn : this.tl.syncedLsn;
    if (!backingOff && this.inflight.size < this.opts.uploads && segmentStart(this.next + 1n, segSize) <= limit) {
      const complete = this.completeFiles();
      while (this.inflight.size < this.opts.uploads && segmentStart(this.next + 1n, segSize) <= limit && complete.has(this.next)) {
        this.startSegment(this.next);
        this.next++;
      }
    }
    if (!this.historyBusy) this.historyBusy = this.archiveHistory().finally(() => (this.historyBusy = null));
    if (!this.verifying && now - this.lastVerify >= this.opts.verifyIntervalMs) {
      this.lastVerify = now;
      this.verifying = this.verifyArchived().finally(() => {
        this.verifying = null;
        this.lastVerify = this.now();
      });
    }
  }

  /** Abort uploads, wait for them, and write the final backup_lsn. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await Promise.allSettled([...this.inflight, this.verifying, this.historyBusy]);
    this.persistBackupLsn(this.now(), true);
  }

  /** Resolves when no upload, verification or history upload is running (tests). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0 || this.verifying || this.historyBusy) await Promise.allSettled([...this.inflight, this.verifying, this.historyBusy]);
  }

  // ---- start ----

  /** First tick with a segment size: where the archive starts. False while the timeline has no WAL. */
  private begin(): boolean {
    const segSize = this.tl.walSegSize;
    const localStart = this.tl.localStartLsn;
    if (segSize === null || localStart === null) return false;
    this.segSize = segSize;
    this.cursor = this.tl.backupLsn;
    if (this.cursor < localStart) {
      this.cursor = localStart;
      if (this.tl.backupLsn > 0n) {
        // Segments below the local start were removed only once archived.
        this.opts.log.info({ backupLsn: formatLsn(this.tl.backupLsn), localStart: formatLsn(localStart) }, 'backup_lsn raised to the start of the local WAL');
        this.tl.backupLsn = localStart;
      } else if (!this.startsWholeSegment(localStart)) {
        // A timeline that began mid-segment holds that segment only from its start on:
        // the bytes before are zeros here, not PostgreSQL's, so the archive starts at the next one.
        this.cursor = localStart + BigInt(segSize);
        this.progress.startLsn = this.cursor;
        this.opts.log.warn({ segment: formatLsn(localStart), archiveStart: formatLsn(this.cursor) }, 'the timeline began mid-segment: the archive starts at its first whole segment');
      }
    }
    this.next = segmentNumber(this.cursor, segSize);
    return true;
  }

  /** Whether the segment at `start` holds PostgreSQL's page header at its first byte (synchronous: once per start). */
  private startsWholeSegment(start: Lsn): boolean {
    const segSize = this.segSize!;
    const file = listSegmentFiles(this.tl.dir, segSize).find((f) => f.segno === segmentNumber(start, segSize));
    if (!file) return true;
    const header = Buffer.alloc(16);
    try {
      const fd = openSync(join(this.tl.dir, file.file), 'r');
      try {
        readSync(fd, header, 0, 16, 0);
      } finally {
        closeSync(fd);
      }
    } catch {
      return true;
    }
    return header.readUInt16LE(0) !== 0 && header.readBigUInt64LE(PAGE_ADDR_OFFSET) === start;
  }

  // ---- segments ----

  /** Complete (renamed) segment files, by segment number: the file each segment is read from (wal/timeline-files.ts). */
  private completeFiles(): Map<bigint, string> {
    const out = new Map<bigint, string>();
    let partial: Set<bigint>;
    try {
      const segSize = this.segSize!;
      const ancestry = this.tl.ancestry;
      // A parent timeline's `.partial` of a switch segment is not the timeline's file: archived under the new name only.
      const files = listSegmentFiles(this.tl.dir, segSize).filter((f) => f.timeline === ancestry.timelineOfSegment(f.segno, segSize));
      partial = new Set(files.filter((f) => f.partial).map((f) => f.segno));
      for (const f of files) if (!f.partial && !partial.has(f.segno)) out.set(f.segno, f.file);
    } catch {
      /* the directory is gone (a deletion): nothing to upload */
    }
    return out;
  }

  private startSegment(segno: bigint): void {
    if (this.busy.has(segno)) return;
    this.busy.add(segno);
    const p = this.archiveSegment(segno).finally(() => {
      this.busy.delete(segno);
      this.inflight.delete(p);
      // A finished upload frees a slot: hand out the next one at once.
      if (!this.stopped) this.tick();
    });
    this.inflight.add(p);
  }

  private async archiveSegment(segno: bigint): Promise<void> {
    const name = this.completeFiles().get(segno);
    if (name === undefined) {
      // Removed meanwhile (a deletion) or not renamed yet: try again later.
      this.failed(segno, new Error(`segment ${segno} is not complete on local disk`), false);
      return;
    }
    let outcome: Outcome;
    try {
      outcome = await this.archiveFile(name, await readFile(join(this.tl.dir, name)));
    } catch (err) {
      if (this.stopped) return;
      this.failed(segno, err as Error, true);
      return;
    }
    this.backoffMs = BACKOFF_MIN_MS;
    if (outcome === 'conflict') {
      this.conflicting.set(segno, name);
      return;
    }
    if (this.conflicting.delete(segno)) this.progress.conflicts.delete(name);
    this.done.add(segno);
    this.advance();
  }

  private failed(segno: bigint, err: Error, count: boolean): void {
    if (count) {
      this.progress.uploadErrors++;
      this.progress.lastError = err.message;
      this.opts.log.warn({ segno: String(segno), err: err.message, retryInMs: this.backoffMs }, 'archive upload failed; retrying');
    }
    this.retry.add(segno);
    this.retryAt = this.now() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
  }

  /** Move backup_lsn over the finished contiguous prefix. */
  private advance(): void {
    const from = segmentNumber(this.cursor, this.segSize!);
    let segno = from;
    while (this.done.delete(segno)) segno++;
    if (segno === from) return;
    this.cursor = segmentStart(segno, this.segSize!);
    // Only archived segments move backup_lsn (it says 0/0 until the first one is).
    if (this.cursor > this.tl.backupLsn) this.tl.backupLsn = this.cursor;
  }

  private persistBackupLsn(now: number, force: boolean): void {
    if (this.tl.backupLsn === this.tl.persistedBackupLsn) return;
    if (!force && now - this.lastPersist < (this.opts.persistEveryMs ?? 1000)) return;
    this.lastPersist = now;
    this.tl.persistBackupLsn(this.tl.backupLsn);
  }

  // ---- one file ----

  /**
   * Upload `file` under its name unless an object is there; an object with
   * another checksum is a conflict. A re-check (`rechecking`) of a file
   * already counted as archived does not count it again.
   */
  private async archiveFile(name: string, file: Buffer, rechecking = false): Promise<Outcome> {
    const key = objectKey(this.tl.key.tenantId, this.tl.key.timelineId, name);
    const signal = this.abort.signal;
    const sha256 = await sha256HexAsync(file);
    const existing = await this.storage.head(key, signal);
    if (existing) {
      let theirs: string;
      try {
        theirs = describedFile(key, existing.metadata).sha256;
      } catch (err) {
        theirs = `unreadable metadata (${(err as Error).message})`;
      }
      if (theirs === sha256) {
        if (!rechecking) this.progress.segmentsAlreadyPresent++;
        return 'present';
      }
      if (!this.progress.conflicts.has(name)) {
        this.progress.conflicts.add(name);
        this.progress.conflictsFound++;
        this.opts.log.error({ file: name, key, local: sha256, archived: theirs }, 'archived object differs from the local file: not overwritten');
      }
      return 'conflict';
    }
    const obj = await encodeObject(file, this.encoding, 1, sha256);
    await this.storage.put(key, obj.body, obj.metadata, signal);
    this.progress.segmentsUploaded++;
    return 'uploaded';
  }

  /** Timeline history files in the directory: archived once each, never replaced. */
  private async archiveHistory(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.tl.dir)).filter((n) => HISTORY_FILE.test(n) && !this.historyArchived.has(n));
    } catch {
      return;
    }
    for (const name of names.sort()) {
      try {
        // A conflict is logged and shown once; the next verification pass checks it again.
        // Not a segment: an identical object is not counted in segments_already_present.
        await this.archiveFile(name, await readFile(join(this.tl.dir, name)), true);
        this.historyArchived.add(name);
      } catch (err) {
        if (this.stopped) return;
        this.progress.uploadErrors++;
        this.progress.lastError = (err as Error).message;
        return;
      }
    }
  }

  /** Check archived segments still on local disk (and the history files) once more. */
  private async verifyArchived(): Promise<void> {
    this.historyArchived.clear();
    const segSize = this.segSize!;
    const below = segmentNumber(this.cursor, segSize);
    const files = [...this.completeFiles()].filter(([segno]) => segno < below || this.conflicting.has(segno)).sort(([a], [b]) => (a < b ? -1 : 1));
    for (const [segno, name] of files) {
      if (this.stopped) return;
      let outcome: Outcome;
      try {
        outcome = await this.archiveFile(name, await readFile(join(this.tl.dir, name)), segno < below);
      } catch (err) {
        if (this.stopped) return;
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
        this.progress.uploadErrors++;
        this.progress.lastError = (err as Error).message;
        continue;
      }
      if (outcome === 'conflict') this.conflicting.set(segno, name);
      else if (this.conflicting.delete(segno)) {
        this.progress.conflicts.delete(name);
        if (segno >= below) {
          this.done.add(segno);
          this.advance();
        }
      }
    }
  }
}
