// `walkeeper run`: the safekeeper daemon.
import { resolve } from 'node:path';
import { Daemon, DaemonStartError } from '../daemon/daemon.js';
import { createLogger } from '../log.js';
import type { ListenAddress } from '../server/pg-server.js';
import { CommandError, UsageError } from './errors.js';

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
  --id N                  this safekeeper's node id (stored in DIR/safekeeper.id)
  --no-sync               acknowledge WAL without fsync (unsafe: for tests and benchmarks)
  --auth-public-key PATH  require tokens: Ed25519 public key(s), PEM; clients send a JWT
                          as the pg password and as "Authorization: Bearer" on HTTP
                          (default: off; see "walkeeper token --help")
  -h, --help              show this help

Logs go to stdout: readable on a terminal, JSON lines otherwise
(WALKEEPER_LOG_FORMAT=json|pretty and WALKEEPER_LOG_LEVEL override).
SIGINT or SIGTERM stops the daemon cleanly.
`;

export interface RunOptions {
  dataDir: string;
  dataDirGiven: boolean;
  listenPg: ListenAddress;
  listenHttp: ListenAddress;
  id?: number;
  noSync: boolean;
  authPublicKeyPath?: string;
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
  const opts: RunOptions = {
    dataDir: resolve(DEFAULT_DATA_DIR),
    dataDirGiven: false,
    listenPg: parseListenAddress(DEFAULT_LISTEN_PG, '--listen-pg'),
    listenHttp: parseListenAddress(DEFAULT_LISTEN_HTTP, '--listen-http'),
    noSync: false,
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let inline: string | undefined;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    if (eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    } else if (/^-D./.test(arg)) {
      inline = arg.slice(2);
      arg = '-D';
    }
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '-h':
      case '--help':
        return 'help';
      case '-D':
      case '--data-dir':
      case '--datadir': {
        const v = value();
        if (v === '') throw new UsageError(`${arg}: empty directory name`);
        opts.dataDir = resolve(v);
        opts.dataDirGiven = true;
        break;
      }
      case '--listen-pg':
        opts.listenPg = parseListenAddress(value(), '--listen-pg');
        break;
      case '--listen-http':
        opts.listenHttp = parseListenAddress(value(), '--listen-http');
        break;
      case '--id': {
        const v = value();
        if (!/^\d{1,15}$/.test(v)) throw new UsageError(`--id: invalid node id "${v}": expected a non-negative integer`);
        opts.id = Number(v);
        break;
      }
      case '--auth-public-key': {
        const v = value();
        if (v === '') throw new UsageError('--auth-public-key: empty file name');
        opts.authPublicKeyPath = resolve(v);
        break;
      }
      case '--no-sync':
        if (inline !== undefined) throw new UsageError('--no-sync takes no value');
        opts.noSync = true;
        break;
      default:
        throw new UsageError(`unknown option "${argv[i]}" (try "walkeeper run --help")`);
    }
  }
  return opts;
}

export async function runCommand(argv: string[]): Promise<number> {
  const opts = parseRunArgs(argv);
  if (opts === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const log = createLogger();
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({
      dataDir: opts.dataDir,
      createDataDir: !opts.dataDirGiven,
      listenPg: opts.listenPg,
      listenHttp: opts.listenHttp,
      id: opts.id,
      noSync: opts.noSync,
      authPublicKeyPath: opts.authPublicKeyPath,
      log,
    });
  } catch (err) {
    if (err instanceof DaemonStartError) throw new CommandError(err.message);
    throw err;
  }
  return new Promise<number>((resolveExit) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log.warn({ signal: sig }, 'second signal: exiting at once');
        process.exit(1);
      }
      log.info({ signal: sig }, 'stopping');
      daemon.stop().then(
        () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
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
