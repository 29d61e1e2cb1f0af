// `walkeeper sync-safekeepers`: fence any running proposer with a higher
// term, bring every safekeeper that answers to the VCL with commit = VCL,
// and print the VCL (src/proposer/sync.ts).
import { formatLsn } from '../lsn.js';
import { syncSafekeepers, type SyncOptions } from '../proposer/sync.js';
import { CommandError } from './errors.js';
import { parseCommandLine, showHelp } from './options.js';
import { QUORUM_HELP, QUORUM_OPTIONS, quorumTarget, readTokenFile, resultCommandLogger } from './quorum-options.js';
import { parseDuration } from './units.js';

export const DEFAULT_SYNC_TIMEOUT = '10s';

const HELP = `usage: walkeeper sync-safekeepers --safekeepers HOST:PORT,... --tenant ID --timeline ID [options]

Bring the safekeepers of a timeline to one point: win an election with a
higher term (a running "walkeeper propose" for the timeline loses leadership
and exits), recover lagging safekeepers to the most advanced WAL of the
quorum (the VCL), make it every answering safekeeper's commit position, and
print it as X/Y (0/0 for an empty timeline). Everything below it is
committed; a new primary must have replayed up to it ("walkeeper promote").

options:
${QUORUM_HELP}
  --timeout DURATION         how long a quorum may take to answer, e.g. 10s
                             (default ${DEFAULT_SYNC_TIMEOUT})
  --auth-token-file F        password/token to present to the safekeepers
  -h, --help                 show this help

Exits 0 after printing the VCL, 1 when no quorum answers in time, 2 on bad usage.
`;

export const SYNC_OPTIONS = {
  ...QUORUM_OPTIONS,
  timeout: { names: ['--timeout'], value: true, parse: (v: string, name: string) => parseDuration(v, name) },
  authTokenFile: { names: ['--auth-token-file'], value: true },
} as const;

/** The sync options out of parsed SYNC_OPTIONS values (promote shares them). */
export function syncOptionsFrom(got: { safekeepers: string; tenant: string; timeline: string; authTokenFile: string | undefined }, timeoutSeconds: number): Omit<SyncOptions, 'log'> {
  const opts: Omit<SyncOptions, 'log'> = { ...quorumTarget(got), timeoutMs: timeoutSeconds * 1000 };
  if (got.authTokenFile !== undefined) opts.password = readTokenFile(got.authTokenFile, '--auth-token-file');
  return opts;
}

export function parseSyncArgs(argv: string[]): Omit<SyncOptions, 'log'> | 'help' {
  const parsed = parseCommandLine(argv, { command: 'sync-safekeepers', once: true, options: SYNC_OPTIONS });
  if (parsed === 'help') return 'help';
  const got = parsed.options;
  return syncOptionsFrom(got, got.timeout ?? parseDuration(DEFAULT_SYNC_TIMEOUT, '--timeout'));
}

export async function syncSafekeepersCommand(argv: string[]): Promise<number> {
  const opts = parseSyncArgs(argv);
  if (opts === 'help') return showHelp(HELP);
  try {
    const r = await syncSafekeepers({ ...opts, log: resultCommandLogger() });
    process.stdout.write(`${formatLsn(r.vcl)}\n`);
    return 0;
  } catch (err) {
    throw new CommandError((err as Error).message);
  }
}
