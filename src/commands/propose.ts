// `walkeeper propose`: the quorum proposer in front of an unmodified
// PostgreSQL primary (src/proposer/quorum.ts).
import { createLogger } from '../log.js';
import { LsnError, parseLsn } from '../lsn.js';
import { SLOT_NAME } from '../proposer/primary.js';
import { LostLeadershipError, QuorumProposer, TimelineSwitchError, type QuorumProposerOptions } from '../proposer/quorum.js';
import { CommandError, UsageError } from './errors.js';
import { parseSize } from './units.js';
import { parseCommandLine, showHelp } from './options.js';
import { QUORUM_HELP, QUORUM_OPTIONS, quorumTarget, readTokenFile } from './quorum-options.js';
import { connStringOption } from './tls-options.js';

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
${QUORUM_HELP}
  --slot NAME                physical replication slot on the primary, created
                             when missing (default ${DEFAULT_SLOT})
  --application-name NAME    application_name towards the primary, the name to
                             put in synchronous_standby_names (default ${DEFAULT_APPLICATION_NAME})
  --start-lsn X/Y            where a fresh timeline starts (default: the start of
                             the segment holding the primary's current position)
  --max-buffer SIZE          WAL kept in memory, e.g. 64MB (default 64MB)
  --safekeeper-token-file F  password/token to present to the safekeepers
  -h, --help                 show this help

When the primary moves to a new PostgreSQL timeline (it was promoted), the
proposer ends its term and runs a new election on the new timeline. Pointed
at a promoted server, it continues the safekeepers' WAL on the new timeline
if the server has every committed record; a server whose history diverges
from the safekeepers' (an old primary) is refused.

Exits 0 after SIGINT/SIGTERM, 1 when it cannot go on (another proposer took
over the timeline, the primary's WAL history diverges from the safekeepers',
...), 2 on bad usage.
`;

/** What the command line sets; the rest of the proposer's options keep their defaults. */
export type ProposeOptions = Pick<
  QuorumProposerOptions,
  'primary' | 'safekeepers' | 'tenantId' | 'timelineId' | 'slot' | 'applicationName' | 'startLsn' | 'maxBufferBytes' | 'safekeeperPassword' | 'safekeeperTls'
>;

export function parseProposeArgs(argv: string[]): ProposeOptions | 'help' {
  const parsed = parseCommandLine(argv, {
    command: 'propose',
    once: true,
    options: {
      primary: { names: ['--primary'], value: true, required: true },
      ...QUORUM_OPTIONS,
      slot: { names: ['--slot'], value: true },
      applicationName: { names: ['--application-name'], value: true },
      startLsn: { names: ['--start-lsn'], value: true },
      maxBuffer: { names: ['--max-buffer'], value: true },
      safekeeperTokenFile: { names: ['--safekeeper-token-file'], value: true },
    },
  });
  if (parsed === 'help') return 'help';
  const got = parsed.options;
  const primary = connStringOption(got.primary, '--primary');
  const quorum = quorumTarget(got);
  const slot = got.slot ?? DEFAULT_SLOT;
  if (!SLOT_NAME.test(slot)) throw new UsageError(`--slot: invalid slot name "${slot}": lower-case letters, digits and underscores, at most 63`);
  const applicationName = got.applicationName ?? DEFAULT_APPLICATION_NAME;
  if (applicationName === '' || /[^\x20-\x7e]/.test(applicationName)) throw new UsageError(`--application-name: invalid name "${applicationName}"`);
  const opts: ProposeOptions = {
    primary,
    ...quorum,
    slot,
    applicationName,
    safekeeperTls: quorum.tls,
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
  if (got.safekeeperTokenFile !== undefined) opts.safekeeperPassword = readTokenFile(got.safekeeperTokenFile, '--safekeeper-token-file');
  return opts;
}

export async function proposeCommand(argv: string[]): Promise<number> {
  const opts = parseProposeArgs(argv);
  if (opts === 'help') return showHelp(HELP);
  const log = createLogger();
  let proposer = new QuorumProposer({ ...opts, log });
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
    for (;;) {
      try {
        await proposer.run();
        return 0;
      } catch (err) {
        // A new PostgreSQL timeline on the primary: end the term, run a new election on it.
        if (!(err instanceof TimelineSwitchError) || signals > 0) throw err;
        log.info({ timeline: err.timeline }, 'new election on the new PostgreSQL timeline');
        proposer = new QuorumProposer({ ...opts, log });
      }
    }
  } catch (err) {
    if (err instanceof LostLeadershipError) throw new CommandError(`lost leadership: ${err.message}`);
    throw new CommandError((err as Error).message);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
