// The next WAL segment made ahead, off the event loop: `prealloc.<name>` is
// zero-filled and synced on the thread pool while the current segment
// fills, then renamed into place when the WAL reaches it. Switching
// segments then costs a rename instead of writing (and later flushing) a
// whole segment of zeros in the commit path. One not ready in time is
// dropped and the writer creates the segment itself.
import { closeSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fdatasyncAsync, openAsync, writeFullyAsync } from './fsutil.js';

/** Name prefix of a segment being made ahead (a leftover of a crash is removed when the directory is opened). */
export const PREALLOC_PREFIX = 'prealloc.';
/** Zeros written in chunks of this size. */
export const ZERO_CHUNK = Buffer.alloc(1 << 20);

/** A next segment being made (or made) ahead of time. */
interface Job {
  segno: bigint;
  timeline: number;
  file: string;
  fd: number;
  ready: boolean;
  /** No longer wanted: whoever finishes last closes and removes it. */
  abandoned: boolean;
}

export interface SegmentPreallocatorOptions {
  dir: string;
  walSegSize: number;
  noSync: boolean;
  /** Told when a preallocation fails (the writer then creates the segment itself). */
  onError?: (err: Error) => void;
}

export class SegmentPreallocator {
  /** Segments made ahead, used, and needed before they were ready. */
  readonly stats = { made: 0, used: 0, missed: 0 };
  private job: Job | null = null;
  /** Background work still running (settled() waits for it). */
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly opts: SegmentPreallocatorOptions) {}

  /** Whether a segment is being made (or is ready) now. */
  get busy(): boolean {
    return this.job !== null;
  }

  /**
   * The file made for segment `segno` of timeline `timeline`, renamed to
   * `target` (a name in the directory); null when none is ready. One that
   * can no longer be used is dropped.
   */
  take(segno: bigint, timeline: number, target: string): number | null {
    const p = this.job;
    if (!p) return null;
    if (!p.ready || p.segno !== segno || p.timeline !== timeline) {
      if (p.segno <= segno || p.timeline !== timeline) {
        // Too late or of no use any more: the writer creates the segment itself.
        if (p.segno === segno) this.stats.missed++;
        this.abandon();
      }
      return null;
    }
    this.job = null;
    renameSync(join(this.opts.dir, p.file), join(this.opts.dir, target));
    this.stats.used++;
    return p.fd;
  }

  /** Start making segment `segno` (file name `name`) of timeline `timeline` in the background. */
  start(segno: bigint, timeline: number, name: string): void {
    if (this.job) return;
    const p: Job = { segno, timeline, file: PREALLOC_PREFIX + name, fd: -1, ready: false, abandoned: false };
    this.job = p;
    const run = this.fill(p).finally(() => this.running.delete(run));
    this.running.add(run);
  }

  private async fill(p: Job): Promise<void> {
    const { dir, walSegSize, noSync } = this.opts;
    try {
      p.fd = await openAsync(join(dir, p.file), 'w+', 0o600);
      for (let pos = 0; pos < walSegSize && !p.abandoned; pos += ZERO_CHUNK.length) {
        await writeFullyAsync(p.fd, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, walSegSize - pos)), pos);
      }
      // Durable zeros: the first sync of the segment then flushes only the WAL written into it.
      if (!p.abandoned && !noSync) await fdatasyncAsync(p.fd);
      if (!p.abandoned) {
        p.ready = true;
        this.stats.made++;
        return;
      }
    } catch (err) {
      if (!p.abandoned) this.opts.onError?.(err as Error);
      if (this.job === p) this.job = null;
    }
    this.discard(p);
  }

  /** Drop the current one: a finished one is removed now, a running one when its current step ends. */
  abandon(): void {
    const p = this.job;
    if (!p) return;
    this.job = null;
    p.abandoned = true;
    if (p.ready) this.discard(p);
  }

  private discard(p: Job): void {
    if (p.fd >= 0) {
      closeSync(p.fd);
      p.fd = -1;
    }
    try {
      unlinkSync(join(this.opts.dir, p.file));
    } catch {
      /* never created, or the directory is gone */
    }
  }

  /** Resolves once no background work is running (after abandon(), nothing of it is left). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
