// `walkeeper wal-end DIR [--wal-seg-size BYTES] [--timeline N] [--json]`:
// print where valid WAL ends in a directory of segment files.
import { formatLsn } from '../lsn.js';
import { WalDirError } from '../wal/errors.js';
import { findWalEnd, type WalEndResult } from '../wal/wal-end.js';
import { CommandError, UsageError } from './errors.js';

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
function parseInteger(option: string, text: string | undefined): number {
  if (text === undefined || text === '') throw new UsageError(`option ${option} needs a value`);
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) throw new UsageError(`invalid value "${text}" for ${option}: expected an integer`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`invalid value "${text}" for ${option}: too large`);
  return n;
}

export function parseWalEndArgs(argv: string[]): WalEndArgs {
  const args: Partial<WalEndArgs> & { json: boolean; help: boolean } = { json: false, help: false };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string | undefined => (inline !== undefined ? inline : argv[++i]);
    switch (name) {
      case '-h':
      case '--help':
        args.help = true;
        break;
      case '--json':
        if (inline !== undefined) throw new UsageError('option --json takes no value');
        args.json = true;
        break;
      case '--wal-seg-size':
        args.walSegSize = parseInteger(name, value());
        break;
      case '--timeline':
        args.timeline = parseInteger(name, value());
        break;
      default:
        if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option "${arg}" (try --help)`);
        positional.push(arg);
    }
  }
  if (args.help) return { dir: '', json: false, help: true };
  if (positional.length === 0) throw new UsageError('missing DIR (try --help)');
  if (positional.length > 1) throw new UsageError(`expected one DIR, got ${positional.length} arguments`);
  return { ...args, dir: positional[0] };
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
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
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
