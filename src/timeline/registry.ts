// All timelines of a data directory: loaded at start-up (each one's end of
// WAL found by the scanner), created on demand when a proposer greets a new
// one. A timeline whose files cannot be read is kept as failed, so that the
// others are still served and its connections get a clear error.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { formatLsn } from '../lsn.js';
import { removeInterruptedDeletions } from '../storage/remove.js';
import { ID_HEX, keyString, type TimelineKey } from './ids.js';
import { SyncPolicy } from './sync-policy.js';
import { Timeline, type TimelineObserver } from './timeline.js';

export interface RegistryOptions {
  root: string;
  noSync?: boolean;
  log: Logger;
  /** Given to every timeline (metrics). */
  observer?: TimelineObserver;
  /** --max-timeline-disk-usage in bytes (0: no cap). */
  maxTimelineDiskUsage?: number;
}

/** A timeline directory that could not be loaded. */
export interface BrokenTimeline {
  key: TimelineKey;
  error: Error;
}

export class TimelineRegistry {
  private readonly timelines = new Map<string, Timeline>();
  readonly broken = new Map<string, BrokenTimeline>();
  /** Timelines being deleted: getOrCreate refuses them until the deletion is over. */
  private readonly deleting = new Set<string>();

  /** Whether a timeline's sync round may block the event loop: decided across all of them. */
  readonly syncPolicy = new SyncPolicy();

  constructor(private readonly opts: RegistryOptions) {}

  private make(key: TimelineKey, log: Logger): Timeline {
    const { root, noSync, observer, maxTimelineDiskUsage } = this.opts;
    return new Timeline({ root, key, noSync, log, observer, maxDiskUsage: maxTimelineDiskUsage, syncPolicy: this.syncPolicy });
  }

  /** The data directory holding `<tenant>/<timeline>` directories. */
  get root(): string {
    return this.opts.root;
  }

  get size(): number {
    return this.timelines.size;
  }

  list(): Timeline[] {
    return [...this.timelines.values()];
  }

  get(key: TimelineKey): Timeline | undefined {
    return this.timelines.get(keyString(key));
  }

  /** The timeline, created in memory when new (its directory appears with its first durable write). */
  getOrCreate(key: TimelineKey): Timeline {
    const name = keyString(key);
    const broken = this.broken.get(name);
    if (broken) throw broken.error;
    if (this.deleting.has(name)) throw new Error(`timeline ${name} is being deleted`);
    let tl = this.timelines.get(name);
    if (!tl) {
      tl = this.make(key, this.opts.log);
      this.timelines.set(name, tl);
    }
    return tl;
  }

  /** Load every `<tenant>/<timeline>` directory under the root and find its end of WAL. */
  async loadAll(): Promise<void> {
    const log = this.opts.log;
    for (const tenant of readdirSync(this.opts.root)) {
      if (!ID_HEX.test(tenant) || !isDir(join(this.opts.root, tenant))) continue;
      // A crash between a deletion's rename and its removal leaves the renamed tree behind.
      for (const leftover of removeInterruptedDeletions(join(this.opts.root, tenant))) {
        log.warn({ tenant, removed: leftover }, 'removed the remains of an interrupted timeline deletion');
      }
      for (const timeline of readdirSync(join(this.opts.root, tenant))) {
        if (!ID_HEX.test(timeline) || !isDir(join(this.opts.root, tenant, timeline))) continue;
        const key = { tenantId: tenant.toLowerCase(), timelineId: timeline.toLowerCase() };
        const name = keyString(key);
        const started = performance.now();
        try {
          const tl = this.make(key, log);
          const end = await tl.load();
          this.timelines.set(name, tl);
          const scan = tl.lastScan;
          log.info(
            {
              timeline: name,
              walEnd: formatLsn(end),
              stop: scan?.stopReason ?? 'no WAL',
              segmentsScanned: scan?.segmentsScanned ?? 0,
              ms: Math.round(performance.now() - started),
            },
            'timeline loaded',
          );
        } catch (err) {
          this.broken.set(name, { key, error: err as Error });
          log.error({ timeline: name, err: (err as Error).message }, 'timeline could not be loaded; it will refuse connections');
        }
      }
    }
  }

  /**
   * Take a timeline out of the registry for deletion (loaded or broken): it
   * is no longer listed, and getOrCreate refuses it until `done()` is called.
   */
  detach(key: TimelineKey): { timeline: Timeline | undefined; broken: BrokenTimeline | undefined; done(): void } {
    const name = keyString(key);
    const timeline = this.timelines.get(name);
    const broken = this.broken.get(name);
    this.timelines.delete(name);
    this.broken.delete(name);
    this.deleting.add(name);
    return { timeline, broken, done: () => this.deleting.delete(name) };
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.list().map((t) => t.close()));
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
