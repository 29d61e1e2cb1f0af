// Prometheus metrics: one prom-client Registry per instance (so tests and
// several daemons in one process never share series). Per-timeline values
// are read from the timelines at scrape time; WAL sync latency and errors
// are recorded as they happen, through the observer interfaces the timeline
// and the pq server call.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServerObserver } from '../server/context.js';
import type { Timeline, TimelineObserver } from '../timeline/timeline.js';
import { version } from '../version.js';

/** Where the scrape-time values come from (functions: read at every scrape). */
export interface MetricsSources {
  /** The loaded timelines. */
  timelines(): Timeline[];
  /** Timeline directories that could not be loaded. */
  brokenTimelines?(): number;
  /** Readers streaming a timeline now. */
  readers?(tl: Timeline): number;
  /** The pq listener's connections: open now, accepted since start. */
  pgConnections?(): { open: number; accepted: number } | null;
}

export interface MetricsOptions {
  /** Also collect process and Node.js runtime metrics (default true). */
  processMetrics?: boolean;
}

const TL_LABELS = ['tenant_id', 'timeline_id'] as const;
type TlLabel = (typeof TL_LABELS)[number];

/** Sync latency buckets, 50 µs .. 10 s. */
export const SYNC_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** A readable kind for an SQLSTATE sent to a pq client. */
export function errorKind(sqlstate: string): string {
  switch (sqlstate) {
    case '28P01':
      return 'auth_failed';
    case '28000':
      return 'auth_refused';
    case '08P01':
      return 'protocol';
    case '22023':
      return 'bad_parameter';
    case '42601':
      return 'syntax';
    case '0A000':
      return 'not_supported';
    case '55000':
      return 'wrong_state';
    case '42704':
      return 'undefined_object';
    case '53100':
      return 'disk_full';
    case '53300':
      return 'too_many_connections';
    case '54000':
      return 'too_long';
    case '58030':
      return 'io';
    case '57P01':
      return 'shutdown';
    case 'XX000':
      return 'internal';
    case 'XX001':
      return 'data_corrupted';
    default:
      return `sqlstate_${sqlstate.toLowerCase()}`.replace(/[^a-z0-9_]/g, '_');
  }
}

/** A readable kind for an HTTP error status. */
export function httpErrorKind(status: number): string {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 409:
      return 'conflict';
    case 503:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal' : `http_${status}`;
  }
}

function labelsOf(tl: Timeline): Record<TlLabel, string> {
  return { tenant_id: tl.key.tenantId, timeline_id: tl.key.timelineId };
}

export class Metrics implements TimelineObserver, ServerObserver {
  readonly registry = new Registry();
  private sources: MetricsSources = { timelines: () => [] };
  private readonly syncSeconds: Histogram<TlLabel>;
  private readonly errors: Counter<'kind' | 'source'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status_code'>;
  private readonly tlsHandshakes: Counter<'result' | 'protocol'>;
  /** Label sets of the sync histogram, to drop the series of deleted timelines. */
  private readonly syncSeries = new Map<string, Record<TlLabel, string>>();

  constructor(opts: MetricsOptions = {}) {
    const register = [this.registry];
    const self = this;
    const timelines = (): Timeline[] => self.sources.timelines();

    new Gauge({ name: 'walkeeper_build_info', help: 'walkeeper version (always 1)', labelNames: ['version'], registers: register }).set({ version }, 1);

    new Gauge({
      name: 'walkeeper_timelines',
      help: 'Timelines on this node by state: active, failed (storage error, until restart), broken (could not be loaded)',
      labelNames: ['state'],
      registers: register,
      collect() {
        let failed = 0;
        const all = timelines();
        for (const tl of all) if (tl.failure) failed++;
        this.set({ state: 'active' }, all.length - failed);
        this.set({ state: 'failed' }, failed);
        this.set({ state: 'broken' }, self.sources.brokenTimelines?.() ?? 0);
      },
    });

    const perTimeline = (name: string, help: string, value: (tl: Timeline) => number | bigint): void => {
      new Gauge({
        name,
        help,
        labelNames: TL_LABELS,
        registers: register,
        collect() {
          this.reset();
          for (const tl of timelines()) this.set(labelsOf(tl), Number(value(tl)));
        },
      });
    };
    const perTimelineTotal = (name: string, help: string, value: (tl: Timeline) => number): void => {
      new Counter({
        name,
        help,
        labelNames: TL_LABELS,
        registers: register,
        collect() {
          this.reset();
          for (const tl of timelines()) this.inc(labelsOf(tl), value(tl));
        },
      });
    };

    perTimeline('walkeeper_flush_lsn', 'End of the WAL that is durable on this node (byte position)', (tl) => tl.syncedLsn);
    perTimeline('walkeeper_commit_lsn', 'Highest commit position a proposer reported (byte position)', (tl) => tl.commitLsn);
    perTimelineTotal('walkeeper_wal_written_bytes_total', 'WAL bytes written to segment files since the daemon started', (tl) => tl.stats.bytesWritten);
    perTimelineTotal('walkeeper_wal_appends_total', 'WAL requests received from proposers since the daemon started', (tl) => tl.stats.appends);
    perTimelineTotal('walkeeper_wal_syncs_total', 'WAL syncs (one fdatasync round covering every write before it)', (tl) => tl.stats.syncs);
    perTimelineTotal('walkeeper_wal_segments_preallocated_total', 'WAL segments made ahead of time in the background', (tl) => tl.preallocation.made);
    perTimelineTotal(
      'walkeeper_wal_segment_preallocation_misses_total',
      'WAL segments needed before their background preallocation was ready (created in the write path instead)',
      (tl) => tl.preallocation.missed,
    );
    // WAL archive and retention (README "WAL archive and retention").
    perTimeline('walkeeper_backup_lsn', 'End of the contiguous archived WAL prefix (byte position; 0 without an archive)', (tl) => (tl.archive ? tl.backupLsn : 0n));
    perTimeline('walkeeper_local_start_lsn', 'Start of the oldest WAL segment on local disk (byte position)', (tl) => tl.localStartLsn ?? 0n);
    perTimeline('walkeeper_archive_lag_bytes', 'commit_lsn minus backup_lsn (0 without an archive)', (tl) =>
      tl.archive && tl.commitLsn > tl.backupLsn ? tl.commitLsn - tl.backupLsn : 0n,
    );
    perTimeline('walkeeper_timeline_disk_usage_bytes', "Bytes of the timeline's files on disk", (tl) => tl.diskUsageBytes);
    perTimelineTotal('walkeeper_archive_segments_uploaded_total', 'WAL segments and history files uploaded to the archive', (tl) => tl.archive?.segmentsUploaded ?? 0);
    perTimelineTotal(
      'walkeeper_archive_segments_already_present_total',
      'WAL segments found archived with the same checksum (uploaded by another safekeeper)',
      (tl) => tl.archive?.segmentsAlreadyPresent ?? 0,
    );
    perTimelineTotal('walkeeper_archive_upload_errors_total', 'Failed archive uploads and checks (each retried)', (tl) => tl.archive?.uploadErrors ?? 0);
    perTimelineTotal('walkeeper_archive_conflicts_total', 'Files whose archived object has a different checksum (never overwritten)', (tl) => tl.archive?.conflictsFound ?? 0);
    perTimelineTotal('walkeeper_wal_segments_removed_total', 'Local WAL segments removed past the removal horizon', (tl) => tl.segmentsRemoved);
    perTimeline('walkeeper_connected_proposers', 'WAL push sessions attached to the timeline', (tl) => tl.pushSessions.size);
    perTimeline('walkeeper_connected_readers', 'Replication streams reading the timeline', (tl) => self.sources.readers?.(tl) ?? 0);

    this.syncSeconds = new Histogram({
      name: 'walkeeper_wal_sync_seconds',
      help: 'Time to make written WAL durable (one sync round)',
      labelNames: TL_LABELS,
      buckets: SYNC_BUCKETS,
      registers: register,
      collect() {
        const live = new Set(timelines().map((tl) => tl.name));
        for (const [name, labels] of self.syncSeries) {
          if (live.has(name)) continue;
          this.remove(labels);
          self.syncSeries.delete(name);
        }
      },
    });

    this.errors = new Counter({
      name: 'walkeeper_errors_total',
      help: 'Errors by kind: pq errors sent to clients (by SQLSTATE), HTTP error replies, timeline storage failures',
      labelNames: ['kind', 'source'],
      registers: register,
    });

    new Gauge({
      name: 'walkeeper_pg_connections',
      help: 'Open connections on the PostgreSQL-protocol port',
      registers: register,
      collect() {
        this.set(self.sources.pgConnections?.()?.open ?? 0);
      },
    });
    new Counter({
      name: 'walkeeper_pg_connections_accepted_total',
      help: 'Connections accepted on the PostgreSQL-protocol port since the daemon started',
      registers: register,
      collect() {
        this.reset();
        this.inc(self.sources.pgConnections?.()?.accepted ?? 0);
      },
    });

    this.tlsHandshakes = new Counter({
      name: 'walkeeper_pg_tls_handshakes_total',
      help: 'TLS handshakes on the PostgreSQL-protocol port, by result and protocol version',
      labelNames: ['result', 'protocol'],
      registers: register,
    });

    this.httpRequests = new Counter({
      name: 'walkeeper_http_requests_total',
      help: 'HTTP requests answered, by route and status',
      labelNames: ['method', 'route', 'status_code'],
      registers: register,
    });

    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Say where scrape-time values come from (the daemon does this once its parts exist). */
  attach(sources: MetricsSources): void {
    this.sources = sources;
  }

  // ---- TimelineObserver ----

  walSynced(tl: Timeline, seconds: number): void {
    if (!this.syncSeries.has(tl.name)) this.syncSeries.set(tl.name, labelsOf(tl));
    this.syncSeconds.observe(labelsOf(tl), seconds);
  }

  failed(): void {
    this.errors.inc({ kind: 'timeline_failed', source: 'storage' });
  }

  // ---- ServerObserver ----

  errorSent(sqlstate: string): void {
    this.errors.inc({ kind: errorKind(sqlstate), source: 'pg' });
  }

  tlsHandshake(protocol: string | null): void {
    this.tlsHandshakes.inc(protocol === null ? { result: 'failed', protocol: '' } : { result: 'ok', protocol });
  }

  // ---- HTTP ----

  httpResponse(method: string, route: string, status: number): void {
    this.httpRequests.inc({ method, route, status_code: String(status) });
    if (status >= 400) this.errors.inc({ kind: httpErrorKind(status), source: 'http' });
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
