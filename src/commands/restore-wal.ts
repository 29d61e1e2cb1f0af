// `walkeeper restore-wal %f %p`: PostgreSQL's restore_command. Fetches a
// WAL segment or timeline history file from the archive and/or safekeepers,
// checks it, and writes it to %p atomically (temporary file in the same
// directory, fsync, rename).
//
// The exit code is the contract with PostgreSQL: 1 makes it treat the file
// as absent (recovery ends there, or it probes the next timeline), so 1 is
// returned only when every source said "no such file". Anything doubtful
// exits above 125, which PostgreSQL treats as fatal and stops recovery.
//
// bin/walkeeper.js loads this module directly (not through cli.ts), and the
// fetching half (the archive client, checksums: node:crypto alone is ~20 ms
// of start-up) is imported only when the file is not already spooled: this
// runs once per segment.
import { readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { WalFileSource } from '../archive/fetch.js';
import type { RemoteStorage } from '../archive/remote-storage.js';
import { awaitWorker, followingSegments, markDelivered, spoolDirFor, startPrefetchWorker, takeFromSpool, tidySpool } from '../archive/spool.js';
import { isValidWalSegSize } from '../lsn.js';
import { writeFileDurably } from '../storage/fsutil.js';
import { ID_HEX } from '../timeline/ids.js';
import { walFileKind } from '../wal/verify-segment.js';
import { UsageError } from './errors.js';
import { parseCommandLine, showHelp } from './options.js';

/** The file does not exist in any source asked. */
export const EXIT_MISSING = 1;
/** Above 125: a misconfigured restore_command stops recovery instead of looking like a missing file. */
export const EXIT_USAGE = 129;
/** A source could not answer (network, 5xx, timeout, refused token) after retries, or %p could not be written. */
export const EXIT_UNAVAILABLE = 130;
/** The only copies found were corrupt (checksum, size or page header). */
export const EXIT_CORRUPT = 131;

export const DEFAULT_PREFETCH = 8;

const USAGE = `usage: walkeeper restore-wal FILE PATH --tenant ID --timeline ID
           [--remote-storage URL [--remote-storage-endpoint URL]]
           [--safekeepers [https://]HOST:PORT,... [--sslrootcert F]]
           [--auth-token-file F] [--prefetch N]

Fetch WAL file FILE (a segment or a NNNNNNNN.history file) of the timeline
and write it to PATH: PostgreSQL's restore_command, e.g.
  restore_command = 'walkeeper restore-wal %f %p --remote-storage s3://bucket/wal --tenant ... --timeline ...'

  --tenant ID, --timeline ID      the timeline (32 hex digits each)
  --remote-storage URL            the archive: s3://BUCKET[/PREFIX] or file:///DIR
  --remote-storage-endpoint URL   an S3-compatible server (path-style requests)
  --safekeepers HOST:PORT,...     safekeepers' HTTP admin addresses, asked after the archive;
                                  https://HOST:PORT for a safekeeper serving HTTPS
  --sslrootcert F                 CA certificate(s) to check https safekeepers with
                                  (default: Node's bundled CA list)
  --auth-token-file F             send the token in F as "Authorization: Bearer" to safekeepers
  --prefetch N                    fetch the next N segments in the background (default ${DEFAULT_PREFETCH}, 0: off)
  -h, --help                      show this help

Exit status: 0 delivered and verified; ${EXIT_MISSING} no source has FILE; ${EXIT_USAGE} bad usage;
${EXIT_UNAVAILABLE} a source failed (after retries) or PATH could not be written; ${EXIT_CORRUPT} only corrupt
copies were found. PostgreSQL aborts recovery on ${EXIT_UNAVAILABLE} and ${EXIT_CORRUPT} instead of ending it early.
`;

export interface RestoreWalArgs {
  file: string;
  path: string;
  tenantId: string;
  timelineId: string;
  remoteStorage?: string;
  remoteStorageEndpoint?: string;
  safekeepers: string[];
  authTokenFile?: string;
  sslRootCert?: string;
  prefetch: number;
  /** Internal: run as the background prefetcher, for segments of this size. */
  prefetchWorker?: number;
}

function parseIdOption(text: string, option: string): string {
  if (!ID_HEX.test(text)) throw new UsageError(`invalid value "${text}" for ${option}: expected 32 hex digits`);
  return text.toLowerCase();
}

const ADDRESS = /^(https?:\/\/)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/;

/** The safekeepers' base URLs: HOST:PORT means http. */
function parseSafekeepers(text: string, option: string): string[] {
  return text.split(',').map((s) => {
    const a = s.trim();
    const m = ADDRESS.exec(a);
    if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) {
      throw new UsageError(`invalid address "${a}" in ${option}: expected HOST:PORT or https://HOST:PORT (the safekeeper's HTTP port)`);
    }
    return m[1] ? a : `http://${a}`;
  });
}

function parseCount(text: string, option: string): number {
  if (!/^[0-9]{1,4}$/.test(text)) throw new UsageError(`invalid value "${text}" for ${option}: expected a number of segments (0 to 9999)`);
  return Number(text);
}

function parseSegSize(text: string, option: string): number {
  const n = /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
  if (!isValidWalSegSize(n)) throw new UsageError(`invalid value "${text}" for ${option}: expected a WAL segment size in bytes`);
  return n;
}

export function parseRestoreWalArgs(argv: string[]): RestoreWalArgs | 'help' {
  const parsed = parseCommandLine(argv, {
    command: 'restore-wal',
    positionals: ['FILE', 'PATH'],
    options: {
      tenant: { names: ['--tenant'], value: true, required: true, parse: parseIdOption },
      timeline: { names: ['--timeline'], value: true, required: true, parse: parseIdOption },
      remoteStorage: { names: ['--remote-storage'], value: true },
      remoteStorageEndpoint: { names: ['--remote-storage-endpoint'], value: true },
      safekeepers: { names: ['--safekeepers'], value: true, parse: parseSafekeepers },
      authTokenFile: { names: ['--auth-token-file'], value: true },
      sslRootCert: { names: ['--sslrootcert'], value: true },
      prefetch: { names: ['--prefetch'], value: true, parse: parseCount },
      prefetchWorker: { names: ['--prefetch-worker'], value: true, parse: parseSegSize },
    },
  });
  if (parsed === 'help') return 'help';
  const o = parsed.options;
  const [file, path] = parsed.positionals;
  if (file === '' || path === '') throw new UsageError('FILE and PATH must not be empty');
  if (o.remoteStorage === undefined && o.safekeepers === undefined) throw new UsageError('give --remote-storage URL and/or --safekeepers HOST:PORT,... (where to fetch from)');
  if (o.remoteStorageEndpoint !== undefined && o.remoteStorage === undefined) throw new UsageError('--remote-storage-endpoint needs --remote-storage');
  if (o.authTokenFile !== undefined && o.safekeepers === undefined) throw new UsageError('--auth-token-file applies to --safekeepers only');
  if (o.sslRootCert !== undefined && !(o.safekeepers ?? []).some((s) => s.startsWith('https:'))) throw new UsageError('--sslrootcert applies to https:// safekeepers only');
  return {
    file,
    path,
    tenantId: o.tenant,
    timelineId: o.timeline,
    remoteStorage: o.remoteStorage,
    remoteStorageEndpoint: o.remoteStorageEndpoint,
    safekeepers: o.safekeepers ?? [],
    authTokenFile: o.authTokenFile,
    sslRootCert: o.sslRootCert,
    prefetch: o.prefetch ?? DEFAULT_PREFETCH,
    prefetchWorker: o.prefetchWorker,
  };
}

class RestoreError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

function readToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new RestoreError(EXIT_UNAVAILABLE, `cannot read --auth-token-file "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (token === '' || /\s/.test(token)) throw new RestoreError(EXIT_UNAVAILABLE, `--auth-token-file "${file}" does not hold one token`);
  return token;
}

/** A CA file that cannot be read is a broken restore_command: recovery stops. */
async function readRootCert(path: string): Promise<Buffer> {
  const { readPem } = await import('../proposer/tls-client.js');
  try {
    return readPem(path, 'root certificate');
  } catch (err) {
    throw new RestoreError(EXIT_USAGE, `--sslrootcert: ${(err as Error).message}`);
  }
}

async function openSources(args: RestoreWalArgs): Promise<{ sources: WalFileSource[]; storage?: RemoteStorage }> {
  const { ArchiveSource, SafekeeperSource } = await import('../archive/fetch.js');
  const { openRemoteStorage } = await import('../archive/open.js');
  const sources: WalFileSource[] = [];
  let storage: RemoteStorage | undefined;
  if (args.remoteStorage !== undefined) {
    try {
      storage = await openRemoteStorage({ url: args.remoteStorage, endpoint: args.remoteStorageEndpoint });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    sources.push(new ArchiveSource(storage, args.tenantId, args.timelineId));
  }
  const token = args.authTokenFile !== undefined ? readToken(args.authTokenFile) : undefined;
  const ca = args.sslRootCert !== undefined ? await readRootCert(args.sslRootCert) : undefined;
  for (const a of args.safekeepers) sources.push(new SafekeeperSource(a, args.tenantId, args.timelineId, token, ca));
  return { sources, storage };
}

/** Write the file to PATH through a temporary name in the same directory; nothing is left behind on failure. */
async function deliver(path: string, bytes: Buffer): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.walkeeper-${process.pid}`);
  try {
    await writeFileDurably(path, bytes, { tempPath: temp });
  } catch (err) {
    rmSync(temp, { force: true });
    throw new RestoreError(EXIT_UNAVAILABLE, `cannot write ${path}: ${(err as Error).message}`);
  }
}

/** After segment `name` was delivered (and marked so): trim the spool and start a worker when it runs low. */
function keepSpoolFilled(args: RestoreWalArgs, argv: readonly string[], spool: string, walSegSize: number): void {
  const wanted = followingSegments(args.file, walSegSize, args.prefetch);
  const { missing, workerRunning } = tidySpool(spool, wanted);
  if (workerRunning || missing < Math.ceil(args.prefetch / 2)) return;
  startPrefetchWorker(['restore-wal', ...argv, '--prefetch-worker', String(walSegSize)]);
}

async function restore(args: RestoreWalArgs, argv: readonly string[]): Promise<number> {
  const kind = walFileKind(args.file);
  if (kind === null) throw new RestoreError(EXIT_MISSING, `"${args.file}" is not a WAL segment or history file name: nothing by that name is archived`);
  const spool = spoolDirFor(args.path, args.tenantId, args.timelineId);
  if (args.prefetchWorker !== undefined) {
    if (args.prefetch === 0) return 0;
    // A worker that hangs must not linger: it is only ever worth a few segments.
    setTimeout(() => process.exit(0), 300_000).unref();
    const { runPrefetchWorker } = await import('../archive/prefetch.js');
    const { sources, storage } = await openSources(args);
    try {
      await runPrefetchWorker({ spool, after: args.file, walSegSize: args.prefetchWorker, depth: args.prefetch, sources });
    } finally {
      await storage?.close();
    }
    return 0;
  }
  let walSegSize = kind === 'segment' && args.prefetch > 0 ? await fromSpool(spool, args.file, args.path) : null;
  if (walSegSize === null) {
    const { FetchFailure, fetchWalFile } = await import('../archive/fetch.js');
    const { sources, storage } = await openSources(args);
    try {
      let outcome;
      try {
        outcome = await fetchWalFile(args.file, sources);
      } catch (err) {
        if (err instanceof FetchFailure) throw new RestoreError(err.kind === 'corrupt' ? EXIT_CORRUPT : EXIT_UNAVAILABLE, `cannot restore ${err.message}`);
        throw err;
      }
      if (outcome.kind === 'missing') {
        throw new RestoreError(EXIT_MISSING, `${args.file} not found (asked: ${sources.map((s) => s.description).join(', ')})`);
      }
      await deliver(args.path, outcome.bytes);
      if (kind !== 'segment') return 0;
      walSegSize = outcome.bytes.length;
    } finally {
      await storage?.close();
    }
  }
  if (args.prefetch > 0) {
    try {
      keepSpoolFilled(args, argv, spool, walSegSize);
    } catch {
      /* prefetch only saves time: the file is delivered, and the next call fetches on its own */
    }
  }
  return 0;
}

/** The segment from the spool (its size), or null to fetch it: a spool that cannot be used is no error. */
async function fromSpool(spool: string, name: string, path: string): Promise<number | null> {
  try {
    await awaitWorker(spool, name);
    // Before the file leaves the spool: a worker must not take its absence for a gap to fill.
    markDelivered(spool, name);
    return takeFromSpool(spool, name, path);
  } catch {
    return null;
  }
}

/** The command: every failure is one line on stderr and an exit code from the table above. */
export async function restoreWalCommand(argv: string[]): Promise<number> {
  try {
    const args = parseRestoreWalArgs(argv);
    if (args === 'help') return showHelp(USAGE);
    return await restore(args, argv);
  } catch (err) {
    const code = err instanceof RestoreError ? err.exitCode : err instanceof UsageError ? EXIT_USAGE : EXIT_UNAVAILABLE;
    process.stderr.write(`walkeeper restore-wal: ${(err as Error).message}\n`);
    return code;
  }
}
