// `walkeeper promote`: sync the safekeepers, wait until a hot standby has
// replayed their VCL, promote it, print the switch point and the new
// PostgreSQL timeline (src/proposer/promote.ts).
import { formatLsn } from '../lsn.js';
import { promoteStandby } from '../proposer/promote.js';
import { CommandError } from './errors.js';
import { parseCommandLine, showHelp } from './options.js';
import { QUORUM_HELP, resultCommandLogger } from './quorum-options.js';
import { connStringOption } from './tls-options.js';
import { DEFAULT_SYNC_TIMEOUT, SYNC_OPTIONS, syncOptionsFrom } from './sync-safekeepers.js';
import { parseDuration } from './units.js';

export const DEFAULT_PROMOTE_TIMEOUT = '60s';

const HELP = `usage: walkeeper promote --standby CONNSTR --safekeepers HOST:PORT,... --tenant ID --timeline ID [options]

Promote a hot standby that streams from the safekeepers without losing a
committed transaction: run sync-safekeepers (a running proposer for the
timeline loses leadership), wait until the standby has received the VCL and
replayed everything complete below it, then pg_promote() it and wait until it
accepts writes. Prints one line:

  switch LSN X/Y, PostgreSQL timeline N

A standby that does not get there within --timeout is left a standby (exit 1,
saying how far behind it is). promote does not start a proposer: run
"walkeeper propose --primary <the promoted server> ..." with the same tenant
and timeline next.

options:
  --standby CONNSTR          libpq connection string or URI of the standby
${QUORUM_HELP}
  --timeout DURATION         how long the standby may take to catch up and
                             to leave recovery, e.g. 30s or 2m (default ${DEFAULT_PROMOTE_TIMEOUT})
  --auth-token-file F        password/token to present to the safekeepers
  -h, --help                 show this help
`;

export async function promoteCommand(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv, {
    command: 'promote',
    once: true,
    options: { ...SYNC_OPTIONS, standby: { names: ['--standby'], value: true, required: true } },
  });
  if (parsed === 'help') return showHelp(HELP);
  const got = parsed.options;
  const standby = connStringOption(got.standby, '--standby');
  const sync = syncOptionsFrom(got, parseDuration(DEFAULT_SYNC_TIMEOUT, '--timeout'));
  const timeoutMs = (got.timeout ?? parseDuration(DEFAULT_PROMOTE_TIMEOUT, '--timeout')) * 1000;
  try {
    const r = await promoteStandby({ standby, sync, timeoutMs, log: resultCommandLogger() });
    process.stdout.write(`switch LSN ${formatLsn(r.switchLsn)}, PostgreSQL timeline ${r.timeline}\n`);
    return 0;
  } catch (err) {
    throw new CommandError((err as Error).message);
  }
}
