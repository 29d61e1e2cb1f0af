// `walkeeper propose`: the quorum proposer in front of an unmodified
// PostgreSQL primary (src/proposer/quorum.ts).
import { readFileSync } from 'node:fs';
import { createLogger } from '../log.js';
import { LsnError, parseLsn } from '../lsn.js';
import { ConnStringError, resolveConnString, type ConnTarget } from '../proposer/connstr.js';
import { SLOT_NAME } from '../proposer/primary.js';
import { LostLeadershipError, QuorumProposer, type QuorumProposerOptions } from '../proposer/quorum.js';
import { CommandError, UsageError } from './errors.js';
import { parseSize } from './units.js';
import { parseCommandLine, showHelp } from './options.js';
import { parseListenAddress } from './run.js';
import { SAFEKEEPER_TLS_HELP, SAFEKEEPER_TLS_OPTIONS, safekeeperTls, usable } from './tls-options.js';

export const DEFAULT_SLOT = 'walkeeper';
export const DEFAULT_APPLICATION_NAME = 'walkeeper';

const HELP = `usage: walkeeper propose --primary CONNSTR --safekeepers HOST:PORT,... --tenant ID --timeline ID [options]

Give an unmodified PostgreSQL primary the quorum guarantee: connect to it as a
physical replication client (with its own slot), win an election among the
safekeepers, recover the most advanced WAL, then stream the primary's WAL to
every safekeeper and report flush = the position a majority has synced. With
synchronous_standby_names naming this proposer's application name, a commit
returns only once its WAL is on a quorum of safekeepers.

options:
  --primary CONNSTR          libpq connection string or URI of the primary
                             (e.g. "host=db1 user=postgres sslmode=verify-full
                             sslrootcert=ca.crt"); TLS as libpq's sslmode,
                             sslrootcert, sslcert, sslkey say (default prefer)
  --safekeepers LIST         comma-separated HOST:PORT of every safekeeper's
                             PostgreSQL-protocol port
  --tenant ID                tenant id, 32 hex digits
  --timeline ID              timeline id, 32 hex digits
  --slot NAME                physical replication slot on the primary, created
                             when missing (default ${DEFAULT_SLOT})
  --application-name NAME    application_name towards the primary, the name to
                             put in synchronous_standby_names (default ${DEFAULT_APPLICATION_NAME})
  --start-lsn X/Y            where a fresh timeline starts (default: the start of
                             the segment holding the primary's current position)
  --max-buffer SIZE          WAL kept in memory, e.g. 64MB (default 64MB)
  --safekeeper-token-file F  password/token to present to the safekeepers
${SAFEKEEPER_TLS_HELP}  -h, --help                 show this help

Exits 0 after SIGINT/SIGTERM, 1 when it cannot go on (another proposer took
over the timeline, the primary switched timelines, ...), 2 on bad usage.
`;

/** What the command line sets; the rest of the proposer's options keep their defaults. */
export type ProposeOptions = Pick<
  QuorumProposerOptions,
  'primary' | 'safekeepers' | 'tenantId' | 'timelineId' | 'slot' | 'applicationName' | 'startLsn' | 'maxBufferBytes' | 'safekeeperPassword' | 'safekeeperTls'
>;

const HEX32 = /^[0-9a-fA-F]{32}$/;

export function parseProposeArgs(argv: string[]): ProposeOptions | 'help' {
  const parsed = parseCommandLine(argv, {
    command: 'propose',
    once: true,
    options: {
      primary: { names: ['--primary'], value: true, required: true },
      safekeepers: { names: ['--safekeepers'], value: true, required: true },
      tenant: { names: ['--tenant'], value: true, required: true },
      timeline: { names: ['--timeline'], value: true, required: true },
      slot: { names: ['--slot'], value: true },
      applicationName: { names: ['--application-name'], value: true },
      startLsn: { names: ['--start-lsn'], value: true },
      maxBuffer: { names: ['--max-buffer'], value: true },
      safekeeperTokenFile: { names: ['--safekeeper-token-file'], value: true },
      ...SAFEKEEPER_TLS_OPTIONS,
    },
  });
  if (parsed === 'help') return 'help';
  const got = parsed.options;
  let primary: ConnTarget;
  try {
    primary = resolveConnString(got.primary);
  } catch (err) {
    if (err instanceof ConnStringError) throw new UsageError(`--primary: ${err.message}`);
    throw err;
  }
  usable(primary.tls, '--primary');
  const safekeepers = got.safekeepers
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => parseListenAddress(s, '--safekeepers'));
  if (safekeepers.length === 0) throw new UsageError('--safekeepers: no address given');
  const seen = new Set<string>();
  for (const s of safekeepers) {
    const k = `${s.host}:${s.port}`;
    if (seen.has(k)) throw new UsageError(`--safekeepers: ${k} is listed twice`);
    seen.add(k);
  }
  for (const [opt, v] of [['--tenant', got.tenant], ['--timeline', got.timeline]] as const) {
    if (!HEX32.test(v)) throw new UsageError(`${opt}: invalid id "${v}": expected 32 hex digits`);
  }
  const slot = got.slot ?? DEFAULT_SLOT;
  if (!SLOT_NAME.test(slot)) throw new UsageError(`--slot: invalid slot name "${slot}": lower-case letters, digits and underscores, at most 63`);
  const applicationName = got.applicationName ?? DEFAULT_APPLICATION_NAME;
  if (applicationName === '' || /[^\x20-\x7e]/.test(applicationName)) throw new UsageError(`--application-name: invalid name "${applicationName}"`);
  const opts: ProposeOptions = {
    primary,
    safekeepers,
    tenantId: got.tenant.toLowerCase(),
    timelineId: got.timeline.toLowerCase(),
    slot,
    applicationName,
    safekeeperTls: safekeeperTls(got),
  };
  if (got.startLsn !== undefined) {
    try {
      opts.startLsn = parseLsn(got.startLsn);
    } catch (err) {
      if (err instanceof LsnError) throw new UsageError(`--start-lsn: ${err.message}`);
      throw err;
    }
  }
  if (got.maxBuffer !== undefined) opts.maxBufferBytes = parseSize(got.maxBuffer, '--max-buffer');
  if (got.safekeeperTokenFile !== undefined) {
    try {
      opts.safekeeperPassword = readFileSync(got.safekeeperTokenFile, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`--safekeeper-token-file: ${(err as Error).message}`);
    }
  }
  return opts;
}

export async function proposeCommand(argv: string[]): Promise<number> {
  const opts = parseProposeArgs(argv);
  if (opts === 'help') return showHelp(HELP);
  const log = createLogger();
  const proposer = new QuorumProposer({ ...opts, log });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.warn({ signal: sig }, 'second signal: exiting at once');
      process.exit(1);
    }
    log.info({ signal: sig }, 'stopping');
    void proposer.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await proposer.run();
    return 0;
  } catch (err) {
    if (err instanceof LostLeadershipError) throw new CommandError(`lost leadership: ${err.message}`);
    throw new CommandError((err as Error).message);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
