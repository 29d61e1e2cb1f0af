// What the admin API needs from the daemon (a port, so the app can be built
// over any registry), and the JSON views of a timeline.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { formatLsn, type Lsn } from '../lsn.js';
import { U64_MAX } from '../protocol/layout.js';
import type { HotStandbyFeedback } from '../protocol/types.js';
import type { ReaderSnapshot } from '../replication/source.js';
import { keyString, type TimelineKey } from '../timeline/ids.js';
import type { TimelineRegistry } from '../timeline/registry.js';
import type { Timeline } from '../timeline/timeline.js';
import { directoryBytes } from '../storage/wal-removal.js';
import { HttpError, notFound } from './errors.js';

export interface NodeAdmin {
  registry: TimelineRegistry;
  /** The readers streaming a timeline now. */
  readers(tl: Timeline): ReaderSnapshot[];
  /**
   * Close every PostgreSQL-protocol connection opened for the timeline
   * (named in its start-up parameters) with a FATAL error carrying
   * `message`; resolves with how many once they are gone.
   */
  closeConnections(key: TimelineKey, message: string): Promise<number>;
  /** Skip fsyncs (the daemon's --no-sync). */
  noSync?: boolean;
}

/** The loaded timeline for the path's ids; 404 when unknown, 503 when it could not be loaded. */
export function lookupTimeline(node: NodeAdmin, params: { tenant_id: string; timeline_id: string }): Timeline {
  const key = { tenantId: params.tenant_id.toLowerCase(), timelineId: params.timeline_id.toLowerCase() };
  const tl = node.registry.get(key);
  if (tl) return tl;
  const broken = node.registry.broken.get(keyString(key));
  if (broken) throw new HttpError(503, `timeline ${keyString(key)} could not be loaded: ${broken.error.message}`);
  throw notFound(`timeline ${keyString(key)} not found on this safekeeper`);
}

// ---- views ----

/** PostgreSQL timestamps are µs since 2000-01-01 UTC. */
const PG_EPOCH_MS = 946_684_800_000;

function pgTimestamp(ts: bigint): string | null {
  if (ts <= 0n) return null;
  return new Date(PG_EPOCH_MS + Number(ts / 1000n)).toISOString();
}

const xidOrNull = (x: bigint): number | null => (x === U64_MAX ? null : Number(x));

export function feedbackView(hs: HotStandbyFeedback): { ts: string | null; xmin: number | null; catalog_xmin: number | null } {
  return { ts: pgTimestamp(hs.ts), xmin: xidOrNull(hs.xmin), catalog_xmin: xidOrNull(hs.catalogXmin) };
}

const lsnOrNull = (l: Lsn): string | null => (l === 0n ? null : formatLsn(l));

export function readerView(r: ReaderSnapshot, flushLsn: Lsn) {
  const reported = r.status !== null ? r.replicatedLsn : r.sentLsn;
  return {
    application_name: r.applicationName,
    address: r.address,
    since: r.attachedAt.toISOString(),
    slot_name: r.slotName ?? null,
    pg_timeline: r.timeline,
    start_lsn: formatLsn(r.startLsn),
    sent_lsn: formatLsn(r.sentLsn),
    write_lsn: r.status ? lsnOrNull(r.status.writeLsn) : null,
    flush_lsn: r.status ? lsnOrNull(r.status.flushLsn) : null,
    apply_lsn: r.status ? lsnOrNull(r.status.applyLsn) : null,
    lag_bytes: flushLsn > reported ? Number(flushLsn - reported) : 0,
    hot_standby_feedback: r.feedback ? feedbackView(r.feedback) : null,
  };
}

const SEGMENT_FILE = /^[0-9A-F]{24}(\.partial)?$/;

export interface LocalWal {
  first_segment: string | null;
  last_segment: string | null;
  segments: number;
  bytes: number;
}

/** The segment files in a timeline directory: first and last name, count, bytes on disk. */
export async function localWal(dir: string): Promise<LocalWal> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => SEGMENT_FILE.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { first_segment: null, last_segment: null, segments: 0, bytes: 0 };
    throw err;
  }
  let bytes = 0;
  for (const n of names) {
    try {
      bytes += (await stat(join(dir, n))).size;
    } catch {
      /* renamed (.partial → full) or removed meanwhile */
    }
  }
  return { first_segment: names[0] ?? null, last_segment: names.at(-1) ?? null, segments: names.length, bytes };
}

export async function timelineView(tl: Timeline, readers: ReaderSnapshot[]) {
  const st = tl.acceptor.state;
  const flush = tl.syncedLsn;
  return {
    tenant_id: tl.key.tenantId,
    timeline_id: tl.key.timelineId,
    state: tl.failure ? 'failed' : 'active',
    error: tl.failure ? tl.failure.message : null,
    epoch: Number(st.epoch),
    vote: { term: Number(st.server.nodeId.term), proposer_uuid: Buffer.from(st.server.nodeId.uuid).toString('hex') },
    server: {
      pg_version: st.server.pgVersion,
      system_id: st.server.systemId.toString(),
      wal_seg_size: st.server.walSegSize,
      pg_timeline: st.server.timeline,
    },
    pg_timeline: st.server.timeline,
    flush_lsn: formatLsn(flush),
    commit_lsn: formatLsn(tl.commitLsn),
    restart_lsn: formatLsn(st.restartLsn),
    ...lifecycleView(tl),
    local_wal: await localWal(tl.dir),
    proposers: [...tl.pushSessions].map((p) => ({ address: p.address, since: p.since.toISOString(), appends: p.appends, wal_bytes: p.walBytes })),
    readers: readers.map((r) => readerView(r, flush)),
    hot_standby_feedback: feedbackView(tl.hsFeedback),
  };
}

/** Where the local WAL starts, how far it is archived, and what the archive uploader did. */
export function lifecycleView(tl: Timeline) {
  const a = tl.archive;
  const commit = tl.commitLsn;
  return {
    local_start_lsn: formatLsn(tl.localStartLsn ?? 0n),
    backup_lsn: formatLsn(a ? tl.backupLsn : 0n),
    disk_usage_bytes: tl.onDisk ? directoryBytes(tl.dir) : 0,
    segments_removed: tl.segmentsRemoved,
    archive: a
      ? {
          location: a.location,
          lag_bytes: commit > tl.backupLsn ? Number(commit - tl.backupLsn) : 0,
          segments_uploaded: a.segmentsUploaded,
          segments_already_present: a.segmentsAlreadyPresent,
          segments_removed: tl.segmentsRemoved,
          upload_errors: a.uploadErrors,
          last_error: a.lastError,
          conflicts: [...a.conflicts].sort(),
          start_lsn: a.startLsn === null ? null : formatLsn(a.startLsn),
        }
      : null,
  };
}
