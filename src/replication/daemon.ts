// The replication side plugged into the daemon: a WalSource over a daemon
// Timeline, a ReplicationConnection over the daemon's ServerConnection, and
// the command handlers that route replication commands to
// handleReplicationQuery(), which the daemon puts in its command table.
import type { Socket } from 'node:net';
import { segmentNumber, type Lsn } from '../lsn.js';
import type { TimelineAncestry } from '../wal/timeline-files.js';
import { ArchiveFallbackReader } from './archived-reader.js';
import type { ServerConnection, StartupInfo } from '../pq/connection.js';
import { PgError, SqlState } from '../pq/errors.js';
import type { HotStandbyFeedback, SafeKeeperInfo } from '../protocol/types.js';
import type { CommandHandler } from '../server/dispatch.js';
import { requireTimeline, type ClientSession } from '../server/context.js';
import type { ClientMessage, ReplicationConnection } from './connection.js';
import { readSegmentFile, SegmentFileReader } from './file-source.js';
import { handleReplicationQuery, type ReplicationOptions } from './handler.js';
import { LsnWatch } from './positions.js';
import { ReaderRegistry, type ReaderHandle, type ReaderInfo, type WaitTarget, type WalReader, type WalSource } from './source.js';

/** What the replication side uses of a daemon Timeline (src/timeline/timeline.ts). */
export interface ServedTimeline {
  readonly name: string;
  readonly dir: string;
  /** Highest commit_lsn a proposer reported. */
  readonly commitLsn: Lsn;
  /** End of the WAL that is durable here. */
  readonly syncedLsn: Lsn;
  readonly storedState: SafeKeeperInfo | null;
  /** The current PostgreSQL timeline and its ancestors: which file holds each segment. */
  readonly ancestry: TimelineAncestry;
  /** The stored history file of PostgreSQL timeline `tli`; null when none. */
  historyFile(tli: number): Uint8Array | null;
  hsFeedback: HotStandbyFeedback;
  /** Start of the oldest local segment (null: none yet). */
  readonly localStartLsn?: Lsn | null;
  /** Whole archived segments, decoded and verified; null (or absent) without an archive. */
  readonly fetchArchivedSegment?: ((segno: bigint) => Promise<Uint8Array | null>) | null;
  subscribe(l: {
    durable(synced: Lsn): void;
    truncated(lsn: Lsn): void;
    failed(err: Error): void;
    committed?(commitLsn: Lsn): void;
    pgTimelineChanged?(tli: number, switchLsn: Lsn): void;
  }): () => void;
}

/**
 * A daemon timeline as a WalSource. Readers see WAL up to
 * min(commit_lsn, durable end); a recovering proposer up to the durable
 * end. Waiting senders are woken after every sync and truncation, and by
 * refresh(), which the WAL push path calls when only commit_lsn moved.
 */
export class TimelineWalSource implements WalSource {
  readonly readers: ReaderRegistry;
  private readonly commit = new LsnWatch(0n);
  private readonly flush = new LsnWatch(0n);
  /** The streams' readers, which keep segment files open until WAL is rewritten. */
  private readonly fileReaders = new Set<SegmentFileReader>();

  constructor(readonly timeline: ServedTimeline) {
    this.oneShot = this.withArchive({
      read: (at: Lsn, into: Uint8Array) => readSegmentFile(this.timeline.dir, this.walSegSize, this.fileTimeline(segmentNumber(at, this.walSegSize)), at, into),
      close() {},
    });
    this.readers = new ReaderRegistry((hs) => {
      timeline.hsFeedback = hs;
    });
    this.refresh();
    timeline.subscribe({
      durable: () => this.refresh(),
      truncated: () => {
        // Segments were zeroed or removed: no stream may go on reading a file it opened before.
        for (const r of this.fileReaders) r.invalidate();
        this.refresh();
      },
      // A heartbeat moves commit_lsn without new WAL: readers waiting for it must wake too.
      committed: () => this.refresh(),
      // A stream on the old timeline waiting at its switch point must wake and end there.
      pgTimelineChanged: () => {
        this.refresh();
        this.flush.wakeAll();
        this.commit.wakeAll();
      },
      failed: () => {},
    });
  }

  private get server(): SafeKeeperInfo['server'] {
    const s = this.timeline.storedState;
    if (!s) throw new PgError({ code: SqlState.UNDEFINED_OBJECT, message: `timeline ${this.timeline.name} has no WAL on this safekeeper` });
    return s.server;
  }

  get systemId(): bigint {
    return this.server.systemId;
  }

  get pgTimeline(): number {
    return this.server.timeline || 1;
  }

  get walSegSize(): number {
    return this.server.walSegSize;
  }

  get pgVersion(): number {
    return this.server.pgVersion;
  }

  flushLsn(): Lsn {
    return this.timeline.syncedLsn;
  }

  commitLsn(): Lsn {
    const c = this.timeline.commitLsn;
    const f = this.timeline.syncedLsn;
    return c < f ? c : f;
  }

  /** Bring the wake-up positions in line with the timeline (also backwards after a truncation). */
  refresh(): void {
    this.flush.set(this.flushLsn());
    this.commit.set(this.commitLsn());
  }

  /** read() without a kept-open file: one segment file read per call, the archive behind it. */
  private readonly oneShot: WalReader;

  read(lsn: Lsn, buf: Uint8Array): number | Promise<number> {
    return this.oneShot.read(lsn, buf);
  }

  openReader(): WalReader {
    const r = new SegmentFileReader(
      this.timeline.dir,
      () => this.walSegSize,
      (segno) => this.fileTimeline(segno),
      (closed) => this.fileReaders.delete(closed),
    );
    this.fileReaders.add(r);
    return this.withArchive(r);
  }

  /**
   * `local`, falling back to the archive for segments removed here. The
   * archive hook is looked at on every read: it is set once the daemon's
   * archive side has seen the timeline, possibly after the stream began.
   */
  private withArchive(local: WalReader): WalReader {
    return new ArchiveFallbackReader(local, this.timeline, () => this.walSegSize, (segno) => this.timeline.ancestry.fileName(segno, this.walSegSize));
  }

  /** The timeline whose file holds segment `segno` (wal/timeline-files.ts), as the one candidate to open. */
  private fileTimeline(segno: bigint): number[] {
    return [this.timeline.ancestry.timelineOfSegment(segno, this.walSegSize)];
  }

  timelineFork(tli: number): { switchpoint: Lsn; nextTli: number } | null {
    return this.timeline.storedState ? this.timeline.ancestry.fork(tli) : null;
  }

  /** A stored `%08X.history` file (PUT_TIMELINE_HISTORY, or put there by hand). */
  timelineHistory(tli: number): Uint8Array | null {
    return this.timeline.historyFile(tli);
  }

  waitFor(lsn: Lsn, which: WaitTarget, signal: AbortSignal): Promise<void> {
    this.refresh();
    return (which === 'commit' ? this.commit : this.flush).waitPast(lsn, signal);
  }

  attachReader(info: ReaderInfo): ReaderHandle {
    return this.readers.attach(info);
  }
}

const sources = new WeakMap<ServedTimeline, TimelineWalSource>();

/** The one WalSource of a timeline (its readers' feedback is combined across connections). */
export function timelineWalSource(tl: ServedTimeline): TimelineWalSource {
  let s = sources.get(tl);
  if (!s) {
    s = new TimelineWalSource(tl);
    sources.set(tl, s);
  }
  return s;
}

/** The daemon's ServerConnection seen through the ReplicationConnection port. */
export function replicationConnection(conn: ServerConnection, info: StartupInfo, errorSent?: (sqlstate: string) => void): ReplicationConnection {
  const socket: Socket = conn.socket;
  const params: Record<string, string> = {};
  for (const [k, v] of info.settings) params[k] = v;
  for (const [k, v] of info.params) params[k] = v;
  return {
    startupParams: params,
    remoteAddress: conn.remote,
    errorSent,
    send(bytes: Uint8Array, written?: () => void): boolean {
      if (conn.isClosed || socket.destroyed) return true;
      if (written) {
        socket.write(bytes, (err) => {
          if (!err) written();
        });
      } else conn.send(bytes);
      return !socket.writableNeedDrain;
    },
    drain(): Promise<void> {
      if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
      return new Promise((resolve) => {
        const done = (): void => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    },
    async nextMessage(signal?: AbortSignal): Promise<ClientMessage | null> {
      try {
        return await conn.receive(signal);
      } catch (err) {
        if (signal?.aborted && err === signal.reason) throw err;
        // A bad length cannot be resynchronised: FATAL. Otherwise the client has gone.
        if (err instanceof PgError) conn.fatal(err);
        return null;
      }
    },
  };
}

/** The keywords routed to the replication side. */
export const REPLICATION_KEYWORDS = [
  'IDENTIFY_SYSTEM',
  'SHOW',
  'TIMELINE_HISTORY',
  'READ_REPLICATION_SLOT',
  'START_REPLICATION',
  'CREATE_REPLICATION_SLOT',
  'DROP_REPLICATION_SLOT',
  'BASE_BACKUP',
] as const;

function sourceFor(cs: ClientSession): TimelineWalSource {
  const key = requireTimeline(cs.named);
  const tl = cs.ctx.registry.get(key);
  if (!tl || !tl.storedState) {
    throw new PgError({ code: SqlState.UNDEFINED_OBJECT, message: `timeline ${key.tenantId}/${key.timelineId} has no WAL on this safekeeper` });
  }
  return timelineWalSource(tl);
}

/**
 * Handlers that route the replication commands of a connection to
 * handleReplicationQuery(), with the timeline named in the connection's
 * start-up parameters as the source. `shutdown` should abort when the daemon
 * begins to stop, before it closes connections: streams then end as
 * PostgreSQL's do (CommandComplete "COPY 0", then close).
 */
export function replicationCommands(opts: ReplicationOptions = {}): Map<string, CommandHandler> {
  const handler: CommandHandler = async (cs, _args, query) => {
    const source = sourceFor(cs);
    const outcome = await handleReplicationQuery(query, replicationConnection(cs.conn, cs.info, (code) => cs.ctx.observer?.errorSent?.(code)), source, opts);
    if (outcome === 'close') {
      cs.conn.close();
      return false;
    }
    return 'ready-sent';
  };
  return new Map(REPLICATION_KEYWORDS.map((keyword) => [keyword, handler]));
}
