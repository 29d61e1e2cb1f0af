// `walkeeper wal-end DIR [--wal-seg-size BYTES] [--timeline N] [--json]`:
// print where valid WAL ends in a directory of segment files.
import { formatLsn } from '../lsn.js';
import { WalDirError } from '../wal/errors.js';
import { findWalEnd, type WalEndResult } from '../wal/wal-end.js';
import { CommandError, UsageError } from './errors.js';
import { parseCommandLine, showHelp } from './options.js';

const USAGE = `usage: walkeeper wal-end DIR [--wal-seg-size BYTES] [--timeline N] [--json]

Find the end of valid WAL in DIR (pg_wal, a pg_receivewal target or a
safekeeper timeline directory), as PostgreSQL's WAL reader would.

  --wal-seg-size BYTES  segment size (default: read from the first segment)
  --timeline N          timeline to read (default: the highest present)
  --json                print one JSON object instead of key=value text
  -h, --help            show this help

Prints "end_lsn=X/Y timeline=N segment=NAME"; exits 1 on bad input.
`;

export interface WalEndArgs {
  dir: string;
  walSegSize?: number;
  timeline?: number;
  json: boolean;
  help: boolean;
}

/** A decimal integer (also 0x-hex), nothing else: "16MB" or "1e6" are refused. */
function parseInteger(text: string, option: string): number {
  if (text === '') throw new UsageError(`${option} needs a value`);
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) throw new UsageError(`invalid value "${text}" for ${option}: expected an integer`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`invalid value "${text}" for ${option}: too large`);
  return n;
}

export function parseWalEndArgs(argv: string[]): WalEndArgs {
  const parsed = parseCommandLine(argv, {
    command: 'wal-end',
    positionals: ['DIR'],
    helpLast: true,
    options: {
      walSegSize: { names: ['--wal-seg-size'], value: true, parse: parseInteger },
      timeline: { names: ['--timeline'], value: true, parse: parseInteger },
      json: { names: ['--json'] },
    },
  });
  if (parsed === 'help') return { dir: '', json: false, help: true };
  return { ...parsed.options, dir: parsed.positionals[0], help: false };
}

export function formatWalEnd(r: WalEndResult, json: boolean): string {
  if (!json) return `end_lsn=${formatLsn(r.endLsn)} timeline=${r.timeline} segment=${r.segmentName}\n`;
  return (
    JSON.stringify({
      end_lsn: formatLsn(r.endLsn),
      timeline: r.timeline,
      segment: r.segmentName,
      wal_seg_size: r.walSegSize,
      last_record_lsn: r.lastRecordLsn === null ? null : formatLsn(r.lastRecordLsn),
      stop_reason: r.stopReason,
      start_lsn: formatLsn(r.startLsn),
      records: r.recordCount,
      segments_scanned: r.segmentsScanned,
      bytes_scanned: r.bytesScanned,
      system_identifier: r.systemId.toString(),
    }) + '\n'
  );
}

export async function walEndCommand(argv: string[]): Promise<number> {
  const args = parseWalEndArgs(argv);
  if (args.help) return showHelp(USAGE);
  let result: WalEndResult;
  try {
    result = await findWalEnd(args.dir, { walSegSize: args.walSegSize, timeline: args.timeline });
  } catch (err) {
    if (err instanceof WalDirError) {
      if (err.code === 'bad-option') throw new UsageError(err.message);
      throw new CommandError(err.message);
    }
    throw err;
  }
  process.stdout.write(formatWalEnd(result, args.json));
  return 0;
}
