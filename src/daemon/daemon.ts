// The safekeeper daemon: data directory lock, node id, timelines (each
// one's end of WAL found at start), the PostgreSQL-protocol listener and
// the HTTP listener; and an orderly stop.
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { JwtVerifier } from '../auth/jwt.js';
import { pgTokenAuth } from '../auth/pg.js';
import { build, type NodeAdmin, type ReloadReport } from '../http/app.js';
import { Metrics } from '../metrics/metrics.js';
import { WalLifecycle } from '../archive/lifecycle.js';
import { openRemoteStorage, type ArchiveSettings } from '../archive/open.js';
import type { RemoteStorage } from '../archive/remote-storage.js';
import { PgError, SqlState } from '../pq/errors.js';
import type { Logger } from '../log.js';
import { DataDirLock, LockHeldError } from '../storage/lock.js';
import { newNodeId, nodeIdPath, readNodeId, writeNodeId } from '../storage/node-id.js';
import { TimelineRegistry } from '../timeline/registry.js';
import { TlsMaterial } from '../tls/material.js';
import { reloadableKeys, reloadableTls, reloadAll, type Reloadable } from './reload.js';
import { walPushCommands } from '../push/session.js';
import { replicationCommands, timelineWalSource } from '../replication/daemon.js';
import { version } from '../version.js';
import type { ServerContext } from '../server/context.js';
import type { CommandTable } from '../server/dispatch.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../server/limits.js';
import { defaultServerVersion, listenError, PgServer, type ListenAddress } from '../server/pg-server.js';

export interface DaemonOptions {
  dataDir: string;
  /** Create the data directory when it does not exist (the default ./.walkeeper). */
  createDataDir?: boolean;
  listenPg: ListenAddress;
  listenHttp: ListenAddress | null;
  /** --id: this node's id; written to safekeeper.id on first use, must match it later.
   * Without it the stored id is used, or a new one is made and stored. */
  id?: number;
  noSync?: boolean;
  log: Logger;
  /** --auth-public-key: Ed25519 public key(s), PEM; tokens are then required (pg password, HTTP Bearer). */
  authPublicKeyPath?: string;
  /** A verifier to use instead of authPublicKeyPath (in-process use). */
  auth?: JwtVerifier;
  /** --remote-storage URL [--remote-storage-endpoint URL]: archive WAL there. */
  archive?: ArchiveSettings;
  /** WAL retention, the disk cap and the archive's pace. */
  walLifecycle?: Partial<WalLifecycleSettings>;
  /** --tls-cert/--tls-key [--tls-required]: TLS on the pq port. */
  tls?: TlsFiles & { required: boolean };
  /** --http-tls-cert/--http-tls-key: HTTPS with this pair (default: the pq port's pair, if any). */
  httpTls?: TlsFiles;
  /** --max-connections, --startup-timeout and the query length cap on the pq port. */
  limits?: Partial<ConnectionLimits>;
}

/** A PEM certificate and its key, by path. */
export interface TlsFiles {
  certPath: string;
  keyPath: string;
}

/** What `walkeeper run` sets of the WAL's life after it is written (defaults in DEFAULT_WAL_LIFECYCLE). */
export interface WalLifecycleSettings {
  /** --wal-keep-size in bytes. */
  walKeepSize: number;
  /** --wal-keep-time in ms (0: off). */
  walKeepTimeMs: number;
  /** --max-timeline-disk-usage in bytes (0: no cap). */
  maxTimelineDiskUsage: number;
  /** --archive-uploads: uploads in flight per timeline. */
  archiveUploads: number;
  /** --archive-verify-interval in ms. */
  archiveVerifyIntervalMs: number;
}

export const DEFAULT_WAL_LIFECYCLE: WalLifecycleSettings = {
  walKeepSize: 64 << 20,
  walKeepTimeMs: 0,
  maxTimelineDiskUsage: 0,
  archiveUploads: 4,
  archiveVerifyIntervalMs: 10 * 60_000,
};

/** A start-up failure, as one line for the operator. */
export class DaemonStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DaemonStartError';
  }
}

function formatAddress(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host) || /^::ffff:127\./.test(host);
}

function describeFsError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on device';
    case 'ENOENT':
      return 'does not exist';
    default:
      return err.message;
  }
}

/** The commands this daemon answers; replication streams end when its `shutdown` aborts. */
function commandTable(shutdown: AbortSignal): CommandTable {
  return new Map([...walPushCommands(), ...replicationCommands({ shutdown })]);
}

export class Daemon {
  readonly dataDir: string;
  readonly log: Logger;
  readonly ctx: ServerContext;
  readonly registry: TimelineRegistry;
  readonly metrics = new Metrics();
  auth: JwtVerifier | undefined;
  readonly startedAt = Date.now();
  pg: PgServer | undefined;
  http: FastifyInstance | undefined;
  pgAddress: ListenAddress | undefined;
  httpAddress: ListenAddress | undefined;
  readonly lifecycleSettings: WalLifecycleSettings;
  /** The archive, once opened (null without --remote-storage). */
  remoteStorage: RemoteStorage | null = null;
  lifecycle: WalLifecycle | undefined;
  /** The pq port's certificate and key (with --tls-cert). */
  pgTls: TlsMaterial | undefined;
  /** The HTTPS certificate and key: the pq port's own object when they are the same files. */
  httpTls: TlsMaterial | undefined;
  private lock: DataDirLock | undefined;
  private stopping: Promise<void> | undefined;
  /** Aborted when the stop begins: WAL senders end their streams as PostgreSQL's do. */
  private readonly shutdownSignal = new AbortController();

  private constructor(private readonly opts: DaemonOptions) {
    this.dataDir = resolve(opts.dataDir);
    this.log = opts.log;
    this.lifecycleSettings = { ...DEFAULT_WAL_LIFECYCLE, ...opts.walLifecycle };
    this.registry = new TimelineRegistry({
      root: this.dataDir,
      noSync: opts.noSync,
      log: opts.log,
      observer: this.metrics,
      maxTimelineDiskUsage: this.lifecycleSettings.maxTimelineDiskUsage,
    });
    this.ctx = {
      registry: this.registry,
      log: opts.log,
      nodeId: null,
      noSync: opts.noSync ?? false,
      stopping: false,
      serverVersion: defaultServerVersion(),
      observer: this.metrics,
      commands: commandTable(this.shutdownSignal.signal),
      limits: { ...DEFAULT_CONNECTION_LIMITS, ...opts.limits },
    };
    this.metrics.attach({
      timelines: () => this.registry.list(),
      brokenTimelines: () => this.registry.broken.size,
      readers: (tl) => timelineWalSource(tl).readers.size,
      pgConnections: () => (this.pg ? { open: this.pg.connectionCount, accepted: this.pg.acceptedCount } : null),
    });
  }

  /** What the HTTP API sees of this node. */
  private nodeAdmin(): NodeAdmin {
    return {
      registry: this.registry,
      readers: (tl) => timelineWalSource(tl).readers.list(),
      closeConnections: (key, message) =>
        this.pg ? this.pg.closeTimelineConnections(key, new PgError({ severity: 'FATAL', code: SqlState.ADMIN_SHUTDOWN, message })) : Promise.resolve(0),
      noSync: this.ctx.noSync,
    };
  }

  private loadAuth(): void {
    if (this.opts.auth) this.auth = this.opts.auth;
    else if (this.opts.authPublicKeyPath !== undefined) {
      try {
        this.auth = JwtVerifier.fromFile(this.opts.authPublicKeyPath);
      } catch (err) {
        throw new DaemonStartError((err as Error).message);
      }
    }
    if (this.auth) this.ctx.auth = pgTokenAuth(this.auth, { log: this.log });
  }

  private loadTls(): void {
    const load = (f: TlsFiles, flags: string): TlsMaterial => {
      try {
        return TlsMaterial.fromFiles(f.certPath, f.keyPath);
      } catch (err) {
        throw new DaemonStartError(`${flags}: ${(err as Error).message}`);
      }
    };
    const { tls, httpTls } = this.opts;
    if (tls) {
      this.pgTls = load(tls, '--tls-cert/--tls-key');
      this.ctx.tls = { material: this.pgTls, required: tls.required };
    }
    this.httpTls = httpTls ? load(httpTls, '--http-tls-cert/--http-tls-key') : this.pgTls;
  }

  /**
   * Re-read the auth public keys and the TLS pairs (SIGHUP, POST /v1/reload).
   * Each is replaced only if its new files can be used.
   */
  reload(): ReloadReport {
    const items: Reloadable[] = [];
    const keys = this.auth && reloadableKeys(this.auth);
    if (keys) items.push(keys);
    const toHttps = (m: TlsMaterial) => () => {
      if (this.http && this.httpTls === m) (this.http.server as unknown as TlsServer).setSecureContext(m.pem);
    };
    if (this.pgTls) items.push(reloadableTls('tls', this.pgTls, toHttps(this.pgTls)));
    if (this.httpTls && this.httpTls !== this.pgTls) items.push(reloadableTls('http_tls', this.httpTls, toHttps(this.httpTls)));
    return reloadAll(items, this.log);
  }

  /** Start everything, or clean up and throw DaemonStartError (one line). */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    try {
      await d.startUp();
    } catch (err) {
      await d.shutdown().catch(() => {});
      if (err instanceof DaemonStartError) throw err;
      throw new DaemonStartError((err as Error).message);
    }
    return d;
  }

  private async startUp(): Promise<void> {
    const dir = this.dataDir;
    this.checkDataDir(dir);
    try {
      this.lock = DataDirLock.acquire(dir);
    } catch (err) {
      if (err instanceof LockHeldError) throw new DaemonStartError(err.message);
      throw new DaemonStartError(`data directory ${dir} is not writable: ${describeFsError(err as NodeJS.ErrnoException)}`);
    }
    if (this.lock.tookOverFrom !== null) this.log.warn({ stalePid: this.lock.tookOverFrom }, 'took over a stale data directory lock');
    this.ctx.nodeId = this.resolveNodeId(dir);
    if (this.opts.noSync) this.log.warn('running with --no-sync: WAL is acknowledged before it is durable (unsafe)');

    this.loadAuth();
    this.loadTls();
    if (this.opts.archive) {
      try {
        this.remoteStorage = await openRemoteStorage(this.opts.archive);
      } catch (err) {
        throw new DaemonStartError(`--remote-storage: ${(err as Error).message}`);
      }
    }
    await this.registry.loadAll();
    const ls = this.lifecycleSettings;
    this.lifecycle = new WalLifecycle({
      registry: this.registry,
      storage: this.remoteStorage,
      keepSize: ls.walKeepSize,
      keepTimeMs: ls.walKeepTimeMs,
      uploads: ls.archiveUploads,
      verifyIntervalMs: ls.archiveVerifyIntervalMs,
      log: this.log,
      noSync: this.opts.noSync,
    });
    this.lifecycle.start();

    this.pg = new PgServer(this.ctx);
    this.pgAddress = await this.pg.listen(this.opts.listenPg);
    if (this.opts.listenHttp) {
      this.http = build({
        log: this.log,
        status: () => ({
          id: this.ctx.nodeId,
          version,
          startedAt: this.startedAt,
          listenPg: this.pgAddress ? formatAddress(this.pgAddress) : null,
          listenHttp: this.httpAddress ? formatAddress(this.httpAddress) : null,
          timelines: () => this.registry.size,
        }),
        node: this.nodeAdmin(),
        auth: this.auth ?? null,
        metrics: this.metrics,
        https: this.httpTls?.pem,
        reload: () => this.reload(),
      });
      const want = this.opts.listenHttp;
      try {
        await this.http.listen({ host: want.host, port: want.port });
      } catch (err) {
        throw listenError('HTTP', want, err as NodeJS.ErrnoException);
      }
      const a = this.http.server.address();
      if (a && typeof a === 'object') this.httpAddress = { host: a.address, port: a.port };
    }
    // Before the ready line, so whoever waits for it has seen them.
    const exposed = (list: Array<ListenAddress | undefined>) => list.filter((a): a is ListenAddress => !!a && !isLoopback(a.host)).map(formatAddress);
    if (!this.auth && exposed([this.pgAddress, this.httpAddress]).length > 0) {
      this.log.warn({ listen: exposed([this.pgAddress, this.httpAddress]) }, 'authentication is off but a listener is not on loopback: anyone who can reach it can read and delete WAL (use --auth-public-key)');
    }
    const plaintext = exposed([this.pgTls ? undefined : this.pgAddress, this.httpTls ? undefined : this.httpAddress]);
    if (plaintext.length > 0) {
      this.log.warn({ listen: plaintext }, 'TLS is off on a listener that is not on loopback: WAL and tokens cross the network in the clear (use --tls-cert/--tls-key)');
    }
    this.log.info(
      {
        dataDir: dir,
        id: this.ctx.nodeId,
        version,
        listenPg: formatAddress(this.pgAddress),
        listenHttp: this.httpAddress ? formatAddress(this.httpAddress) : null,
        timelines: this.registry.size,
        noSync: this.ctx.noSync,
        archive: this.remoteStorage?.description ?? null,
        auth: this.auth ? `on (${this.auth.keyCount} key${this.auth.keyCount === 1 ? '' : 's'})` : 'off',
        tlsPg: this.pgTls ? `${this.ctx.tls?.required ? 'required' : 'on'} (${this.pgTls.summary.subject})` : 'off',
        tlsHttp: this.httpTls ? `on (${this.httpTls.summary.subject})` : 'off',
      },
      'walkeeper ready',
    );
  }

  private checkDataDir(dir: string): void {
    if (!existsSync(dir)) {
      if (!this.opts.createDataDir) throw new DaemonStartError(`data directory ${dir} does not exist (create it first)`);
      try {
        // Only the last component is created: a missing parent is an operator mistake.
        const parent = resolve(dir, '..');
        if (!existsSync(parent)) throw Object.assign(new Error('parent directory missing'), { code: 'ENOENT' });
        accessSync(parent, constants.W_OK);
      } catch (err) {
        throw new DaemonStartError(`cannot create data directory ${dir}: ${describeFsError(err as NodeJS.ErrnoException)}`);
      }
      try {
        mkdirSync(dir, { mode: 0o700 });
      } catch (err) {
        throw new DaemonStartError(`cannot create data directory ${dir}: ${describeFsError(err as NodeJS.ErrnoException)}`);
      }
      this.log.info({ dataDir: dir }, 'created data directory');
    }
    let st;
    try {
      st = statSync(dir);
    } catch (err) {
      throw new DaemonStartError(`data directory ${dir}: ${describeFsError(err as NodeJS.ErrnoException)}`);
    }
    if (!st.isDirectory()) throw new DaemonStartError(`data directory ${dir} is not a directory`);
  }

  private resolveNodeId(dir: string): number {
    const path = nodeIdPath(dir);
    const stored = readNodeId(dir);
    const want = this.opts.id;
    if (want !== undefined && stored !== null && stored !== want) {
      throw new DaemonStartError(`--id ${want} does not match the id ${stored} stored in ${path}`);
    }
    if (stored !== null) return stored;
    const id = want ?? newNodeId();
    try {
      writeNodeId(dir, id, { noSync: this.opts.noSync });
    } catch (err) {
      throw new DaemonStartError(`cannot write ${path}: ${describeFsError(err as NodeJS.ErrnoException)}`);
    }
    if (want === undefined) this.log.info({ id, path }, 'new node id stored');
    return id;
  }

  /**
   * Orderly stop: stop accepting, stop reading, let in-flight syncs finish
   * (their responses are sent), close connections, close files, release the
   * lock. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.ctx.stopping = true;
    this.shutdownSignal.abort();
    const pg = this.pg;
    if (pg) {
      await pg.stopAccepting();
      pg.pauseAll();
    }
    if (this.http) await this.http.close().catch(() => {});
    // Finish the syncs in flight: acknowledgements they cover still go out.
    await Promise.all(this.registry.list().map((t) => t.quiesce().catch(() => {})));
    // Uploads stop; backup_lsn is written a last time before the files close.
    await this.lifecycle?.stop();
    if (pg) await pg.closeAll();
    await this.registry.closeAll();
    await this.remoteStorage?.close().catch(() => {});
    this.lock?.release();
    this.lock = undefined;
    if (pg) this.log.info('walkeeper stopped');
  }
}
