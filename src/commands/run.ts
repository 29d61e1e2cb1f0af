// `walkeeper run`: the safekeeper daemon.
import { resolve } from 'node:path';
import { parseArchiveLocation } from '../archive/location.js';
import type { ArchiveSettings } from '../archive/open.js';
import { Daemon, DaemonStartError, DEFAULT_WAL_LIFECYCLE, type TlsFiles, type WalLifecycleSettings } from '../daemon/daemon.js';
import { createLogger } from '../log.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../server/limits.js';
import type { ListenAddress } from '../server/pg-server.js';
import { CommandError, UsageError } from './errors.js';
import { parseCommandLine, showHelp } from './options.js';
import { parseCount, parseDuration, parseSize } from './units.js';

export const DEFAULT_DATA_DIR = '.walkeeper';
export const DEFAULT_LISTEN_PG = '127.0.0.1:5454';
export const DEFAULT_LISTEN_HTTP = '127.0.0.1:7676';

const HELP = `usage: walkeeper run [options]

Run the safekeeper: PostgreSQL computes push their WAL to it (START_WAL_PUSH).

options:
  -D, --data-dir DIR      data directory (default ./${DEFAULT_DATA_DIR}, created when missing;
                          a directory given explicitly must exist)
  --listen-pg HOST:PORT   PostgreSQL protocol listener (default ${DEFAULT_LISTEN_PG})
  --listen-http HOST:PORT HTTP admin listener (default ${DEFAULT_LISTEN_HTTP})
  --id N                  this safekeeper's node id (stored in DIR/safekeeper.id;
                          default: the stored one, or a new one on the first start)
  --no-sync               acknowledge WAL without fsync (unsafe: for tests and benchmarks)
  --max-connections N     open connections on the PostgreSQL port, start-up included; one
                          more is refused with FATAL 53300 (default ${DEFAULT_CONNECTION_LIMITS.maxConnections})
  --startup-timeout DURATION
                          drop a client that has not finished start-up and authentication
                          within this time (e.g. 10s, 1m; default ${DEFAULT_CONNECTION_LIMITS.startupTimeoutMs / 1000}s)
  --auth-public-key PATH  require tokens: Ed25519 public key(s), PEM; clients send a JWT
                          as the pg password and as "Authorization: Bearer" on HTTP
                          (default: off; see "walkeeper token --help")

TLS (see README "Security"):
  --tls-cert FILE --tls-key FILE
                          serve TLS on the PostgreSQL port (PEM certificate chain and key):
                          SSLRequest is answered S; the admin API serves HTTPS with them too
  --tls-required          refuse plaintext connections on the PostgreSQL port (FATAL 28000)
  --http-tls-cert FILE --http-tls-key FILE
                          HTTPS with this pair instead

WAL archive and retention (see README "WAL archive and retention"):
  --remote-storage URL    archive committed WAL segments to s3://BUCKET[/PREFIX]
                          (credentials and region from the AWS environment) or file:///DIR
  --remote-storage-endpoint URL
                          an S3-compatible server (path-style), e.g. http://127.0.0.1:9000
  --wal-keep-size SIZE    keep at least this much WAL below the flush position for
                          readers (default 64MB; 0 keeps nothing extra)
  --wal-keep-time DURATION
                          keep a completed segment at least this long (e.g. 10m, 7d;
                          default 0: off)
  --max-timeline-disk-usage SIZE
                          refuse appends (SQLSTATE 53100) that would put more WAL than
                          this on disk for one timeline (default 0: no cap)
  --archive-uploads N     uploads in flight per timeline (default 4)
  --archive-verify-interval DURATION
                          re-check archived segments still on local disk this often
                          (default 10m)
  -h, --help              show this help

Logs go to stdout: readable on a terminal, JSON lines otherwise
(WALKEEPER_LOG_FORMAT=json|pretty and WALKEEPER_LOG_LEVEL override).
SIGINT or SIGTERM stops the daemon cleanly. SIGHUP (or POST /v1/reload) re-reads the
auth public keys and the TLS certificates and keys; a broken file is refused and the
old one stays in force.
`;

export interface RunOptions {
  dataDir: string;
  dataDirGiven: boolean;
  listenPg: ListenAddress;
  listenHttp: ListenAddress;
  id?: number;
  noSync: boolean;
  authPublicKeyPath?: string;
  archive?: ArchiveSettings;
  walLifecycle: WalLifecycleSettings;
  tls?: TlsFiles & { required: boolean };
  httpTls?: TlsFiles;
  limits: ConnectionLimits;
}

/** Parse HOST:PORT ([v6]:PORT for IPv6). */
export function parseListenAddress(text: string, option: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) throw new UsageError(`${option}: invalid address "${text}": expected HOST:PORT (e.g. 127.0.0.1:5454 or [::1]:5454)`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`${option}: invalid port ${port} in "${text}": expected 0 to 65535`);
  return { host: m[1] ?? m[2], port };
}

export function parseRunArgs(argv: string[]): RunOptions | 'help' {
  const parsed = parseCommandLine(argv, {
    command: 'run',
    options: {
      dataDir: {
        names: ['--data-dir', '-D', '--datadir'],
        value: true,
        parse: (v, name) => {
          if (v === '') throw new UsageError(`${name}: empty directory name`);
          return resolve(v);
        },
      },
      listenPg: { names: ['--listen-pg'], value: true, parse: (v) => parseListenAddress(v, '--listen-pg') },
      listenHttp: { names: ['--listen-http'], value: true, parse: (v) => parseListenAddress(v, '--listen-http') },
      id: {
        names: ['--id'],
        value: true,
        parse: (v) => {
          if (!/^\d{1,15}$/.test(v)) throw new UsageError(`--id: invalid node id "${v}": expected a non-negative integer`);
          return Number(v);
        },
      },
      noSync: { names: ['--no-sync'] },
      maxConnections: { names: ['--max-connections'], value: true, parse: (v) => parseCount(v, '--max-connections', 1, 100_000) },
      startupTimeout: { names: ['--startup-timeout'], value: true, parse: (v) => parseDuration(v, '--startup-timeout') * 1000 },
      remoteStorage: {
        names: ['--remote-storage'],
        value: true,
        parse: (v) => {
          try {
            parseArchiveLocation(v);
          } catch (err) {
            throw new UsageError(`--remote-storage: ${(err as Error).message}`);
          }
          return v;
        },
      },
      remoteStorageEndpoint: { names: ['--remote-storage-endpoint'], value: true },
      walKeepSize: { names: ['--wal-keep-size'], value: true, parse: (v) => parseSize(v, '--wal-keep-size', { zeroMeansNone: true }) },
      walKeepTime: { names: ['--wal-keep-time'], value: true, parse: (v) => parseDuration(v, '--wal-keep-time', { zeroMeansOff: true }) * 1000 },
      maxTimelineDiskUsage: { names: ['--max-timeline-disk-usage'], value: true, parse: (v) => parseSize(v, '--max-timeline-disk-usage', { zeroMeansNone: true }) },
      archiveUploads: { names: ['--archive-uploads'], value: true, parse: (v) => parseCount(v, '--archive-uploads', 1, 64) },
      archiveVerifyInterval: { names: ['--archive-verify-interval'], value: true, parse: (v) => parseDuration(v, '--archive-verify-interval') * 1000 },
      authPublicKey: { names: ['--auth-public-key'], value: true, parse: filePath },
      tlsCert: { names: ['--tls-cert'], value: true, parse: filePath },
      tlsKey: { names: ['--tls-key'], value: true, parse: filePath },
      tlsRequired: { names: ['--tls-required'] },
      httpTlsCert: { names: ['--http-tls-cert'], value: true, parse: filePath },
      httpTlsKey: { names: ['--http-tls-key'], value: true, parse: filePath },
    },
  });
  if (parsed === 'help') return 'help';
  const o = parsed.options;
  if (o.remoteStorageEndpoint !== undefined && o.remoteStorage === undefined) throw new UsageError('--remote-storage-endpoint needs --remote-storage');
  const pgTls = tlsPair(o.tlsCert, o.tlsKey, '--tls');
  if (o.tlsRequired && !pgTls) throw new UsageError('--tls-required needs --tls-cert and --tls-key');
  const httpTls = tlsPair(o.httpTlsCert, o.httpTlsKey, '--http-tls');
  return {
    dataDir: o.dataDir ?? resolve(DEFAULT_DATA_DIR),
    dataDirGiven: o.dataDir !== undefined,
    listenPg: o.listenPg ?? parseListenAddress(DEFAULT_LISTEN_PG, '--listen-pg'),
    listenHttp: o.listenHttp ?? parseListenAddress(DEFAULT_LISTEN_HTTP, '--listen-http'),
    id: o.id,
    noSync: o.noSync,
    authPublicKeyPath: o.authPublicKey,
    archive: o.remoteStorage !== undefined ? { url: o.remoteStorage, endpoint: o.remoteStorageEndpoint } : undefined,
    walLifecycle: {
      walKeepSize: o.walKeepSize ?? DEFAULT_WAL_LIFECYCLE.walKeepSize,
      walKeepTimeMs: o.walKeepTime ?? DEFAULT_WAL_LIFECYCLE.walKeepTimeMs,
      maxTimelineDiskUsage: o.maxTimelineDiskUsage ?? DEFAULT_WAL_LIFECYCLE.maxTimelineDiskUsage,
      archiveUploads: o.archiveUploads ?? DEFAULT_WAL_LIFECYCLE.archiveUploads,
      archiveVerifyIntervalMs: o.archiveVerifyInterval ?? DEFAULT_WAL_LIFECYCLE.archiveVerifyIntervalMs,
    },
    tls: pgTls ? { ...pgTls, required: o.tlsRequired } : undefined,
    httpTls,
    limits: {
      ...DEFAULT_CONNECTION_LIMITS,
      maxConnections: o.maxConnections ?? DEFAULT_CONNECTION_LIMITS.maxConnections,
      startupTimeoutMs: o.startupTimeout ?? DEFAULT_CONNECTION_LIMITS.startupTimeoutMs,
    },
  };
}

function filePath(v: string, name: string): string {
  if (v === '') throw new UsageError(`${name}: empty file name`);
  return resolve(v);
}

/** A certificate and key given together (`prefix`-cert and `prefix`-key), or neither. */
function tlsPair(certPath: string | undefined, keyPath: string | undefined, prefix: string): TlsFiles | undefined {
  if (certPath === undefined && keyPath === undefined) return undefined;
  if (certPath === undefined) throw new UsageError(`${prefix}-key needs ${prefix}-cert`);
  if (keyPath === undefined) throw new UsageError(`${prefix}-cert needs ${prefix}-key`);
  return { certPath, keyPath };
}

export async function runCommand(argv: string[]): Promise<number> {
  const opts = parseRunArgs(argv);
  if (opts === 'help') return showHelp(HELP);
  const log = createLogger();
  // SIGHUP from now on reloads (during start-up: once started, since the files may have been read already).
  let daemon: Daemon | undefined;
  let hangupDuringStart = false;
  const onHangup = (): void => {
    if (!daemon) {
      hangupDuringStart = true;
      return;
    }
    log.info({ signal: 'SIGHUP' }, 'reloading keys and certificates');
    daemon.reload();
  };
  process.on('SIGHUP', onHangup);
  try {
    daemon = await Daemon.start({
      dataDir: opts.dataDir,
      createDataDir: !opts.dataDirGiven,
      listenPg: opts.listenPg,
      listenHttp: opts.listenHttp,
      id: opts.id,
      noSync: opts.noSync,
      authPublicKeyPath: opts.authPublicKeyPath,
      archive: opts.archive,
      walLifecycle: opts.walLifecycle,
      tls: opts.tls,
      httpTls: opts.httpTls,
      limits: opts.limits,
      log,
    });
  } catch (err) {
    process.off('SIGHUP', onHangup);
    if (err instanceof DaemonStartError) throw new CommandError(err.message);
    throw err;
  }
  if (hangupDuringStart) onHangup();
  const running = daemon;
  return new Promise<number>((resolveExit) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log.warn({ signal: sig }, 'second signal: exiting at once');
        process.exit(1);
      }
      log.info({ signal: sig }, 'stopping');
      running.stop().then(
        () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          process.off('SIGHUP', onHangup);
          resolveExit(0);
        },
        (err) => {
          log.error({ err }, 'error while stopping');
          resolveExit(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
