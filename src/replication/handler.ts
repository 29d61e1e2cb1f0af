// One query on a replication connection: parse it, answer it the way a
// PostgreSQL 15 walsender does, stream WAL for START_REPLICATION. The daemon
// calls handleReplicationQuery() for every simple Query ('Q') on a
// connection that is not a WAL push, and acts on the returned outcome.
//
// Replication slots: walkeeper keeps no physical slots (WAL retention is
// decided by the proposers' restart_lsn, not by readers). So slot commands
// succeed without keeping anything: CREATE_REPLICATION_SLOT answers like
// PostgreSQL for a new physical slot, DROP_REPLICATION_SLOT is a no-op,
// READ_REPLICATION_SLOT reports any name as a physical slot with no
// restart position, and START_REPLICATION SLOT "x" streams as without one.
// Logical slots and logical replication are refused (0A000).
import { formatLsn, type Lsn } from '../lsn.js';
import { RECOVERY_APPLICATION_NAME } from '../pq/streaming.js';
import { parseReplicationCommand, type GenericOption, type ReplicationCommand } from './commands.js';
import type { QueryOutcome, ReplicationConnection } from './connection.js';
import { historyFileName, HistoryParseError, parseHistory } from '../wal/history.js';
import { TimelineAncestry } from '../wal/timeline-files.js';
import {
  commandComplete,
  copyBothResponse,
  dataRow,
  errorResponse,
  int4Field,
  int8Field,
  readyForQuery,
  resultSet,
  rowDescription,
  textField,
} from '../pq/backend.js';
import { PgError, SqlState } from '../pq/errors.js';
import { streamWal, type SenderOptions, type StreamPlan } from './sender.js';
import type { WalSource } from './source.js';

export interface ReplicationOptions extends SenderOptions {
  /** SHOW data_directory_mode (default 0700). */
  dataDirectoryMode?: string;
}

const LOGICAL_NOT_SUPPORTED = 'logical decoding requires a database connection';

/** wal_segment_size as PostgreSQL shows it: the largest unit that divides it (16MB, 1GB). */
export function formatWalSegSize(bytes: number): string {
  if (bytes % (1 << 30) === 0) return `${bytes / (1 << 30)}GB`;
  if (bytes % (1 << 20) === 0) return `${bytes / (1 << 20)}MB`;
  if (bytes % 1024 === 0) return `${bytes / 1024}kB`;
  return `${bytes}B`;
}

/** server_version text for a server_version_num (150004 → "15.4"); 0 = unknown → "15.0". */
export function serverVersionText(pgVersion: number): string {
  const v = pgVersion > 0 ? pgVersion : 150000;
  return `${Math.floor(v / 10000)}.${v % 10000}`;
}

function isRecovery(conn: ReplicationConnection): boolean {
  return conn.startupParams.application_name === RECOVERY_APPLICATION_NAME;
}

function send(conn: ReplicationConnection, ...parts: Buffer[]): void {
  conn.send(parts.length === 1 ? parts[0] : Buffer.concat(parts));
}

/** ErrorResponse, then ReadyForQuery unless the error is FATAL. */
function reportError(conn: ReplicationConnection, err: PgError): QueryOutcome {
  const e = errorResponse({ severity: err.severity, code: err.code, message: err.message, detail: err.detail, hint: err.hint });
  conn.errorSent?.(err.code);
  if (err.fatal) {
    send(conn, e);
    return 'close';
  }
  send(conn, e, readyForQuery());
  return 'ready';
}

/**
 * Handle one simple Query on a replication connection. Everything the
 * client gets, ReadyForQuery included, is sent from here. Returns 'ready'
 * to go on reading queries, 'close' to close the connection.
 */
export async function handleReplicationQuery(sql: string, conn: ReplicationConnection, source: WalSource, opts: ReplicationOptions = {}): Promise<QueryOutcome> {
  let cmd: ReplicationCommand;
  try {
    cmd = parseReplicationCommand(sql);
  } catch (err) {
    if (err instanceof PgError) return reportError(conn, err);
    throw err;
  }
  try {
    return await execute(cmd, conn, source, opts);
  } catch (err) {
    if (err instanceof PgError) return reportError(conn, err);
    return reportError(conn, new PgError({ code: SqlState.INTERNAL_ERROR, message: (err as Error)?.message ?? String(err) }));
  }
}

async function execute(cmd: ReplicationCommand, conn: ReplicationConnection, source: WalSource, opts: ReplicationOptions): Promise<QueryOutcome> {
  switch (cmd.type) {
    case 'IDENTIFY_SYSTEM': {
      const pos = isRecovery(conn) ? source.flushLsn() : source.commitLsn();
      send(
        conn,
        resultSet(
          [textField('systemid'), int4Field('timeline'), textField('xlogpos'), textField('dbname')],
          [[BigInt.asUintN(64, source.systemId).toString(), String(source.pgTimeline), formatLsn(pos), null]],
          'IDENTIFY_SYSTEM',
        ),
        readyForQuery(),
      );
      return 'ready';
    }
    case 'SHOW': {
      const [name, value] = showVariable(cmd.name, source, opts);
      send(conn, resultSet([textField(name)], [[value]], 'SHOW'), readyForQuery());
      return 'ready';
    }
    case 'READ_REPLICATION_SLOT':
      send(
        conn,
        resultSet([textField('slot_type'), textField('restart_lsn'), int8Field('restart_tli')], [['physical', null, null]], 'READ_REPLICATION_SLOT'),
        readyForQuery(),
      );
      return 'ready';
    case 'TIMELINE_HISTORY': {
      // PostgreSQL sends the row description before it opens the file.
      const columns = [textField('filename', 0), textField('content', 0)];
      send(conn, rowDescription(columns));
      const file = historyFileName(cmd.timeline);
      const content = source.timelineHistory ? await source.timelineHistory(cmd.timeline) : null;
      if (!content) {
        return reportError(conn, new PgError({ code: SqlState.UNDEFINED_FILE, message: `could not open file "pg_wal/${file}": No such file or directory` }));
      }
      send(conn, dataRow([file, content]), commandComplete('TIMELINE_HISTORY'), readyForQuery());
      return 'ready';
    }
    case 'CREATE_REPLICATION_SLOT': {
      if (cmd.kind === 'logical') throw new PgError({ code: SqlState.FEATURE_NOT_SUPPORTED, message: LOGICAL_NOT_SUPPORTED });
      checkPhysicalSlotOptions(cmd.options);
      // A physical slot's consistent_point is always 0/0 in PostgreSQL.
      send(
        conn,
        resultSet(
          [textField('slot_name'), textField('consistent_point'), textField('snapshot_name'), textField('output_plugin')],
          [[cmd.slotName, '0/0', null, null]],
          'CREATE_REPLICATION_SLOT',
        ),
        readyForQuery(),
      );
      return 'ready';
    }
    case 'DROP_REPLICATION_SLOT':
      send(conn, commandComplete('DROP_REPLICATION_SLOT'), readyForQuery());
      return 'ready';
    case 'BASE_BACKUP':
      throw new PgError({ code: SqlState.FEATURE_NOT_SUPPORTED, message: 'BASE_BACKUP is not supported: walkeeper stores WAL only' });
    case 'START_REPLICATION':
      if (cmd.kind === 'logical') throw new PgError({ code: SqlState.FEATURE_NOT_SUPPORTED, message: LOGICAL_NOT_SUPPORTED });
      return startReplication(cmd, conn, source, opts);
  }
}

function showVariable(name: string, source: WalSource, opts: ReplicationOptions): [string, string] {
  const key = name.toLowerCase();
  switch (key) {
    case 'data_directory_mode':
      return [key, opts.dataDirectoryMode ?? '0700'];
    case 'wal_segment_size':
      return [key, formatWalSegSize(source.walSegSize)];
    case 'server_version':
      return [key, serverVersionText(source.pgVersion)];
    case 'server_version_num':
      return [key, String(source.pgVersion > 0 ? source.pgVersion : 150000)];
    case 'integer_datetimes':
      return [key, 'on'];
    case 'wal_block_size':
      return [key, '8192'];
    default:
      throw new PgError({ code: SqlState.UNDEFINED_OBJECT, message: `unrecognized configuration parameter "${name}"` });
  }
}

const TRUE_WORDS = new Set(['true', 'on', 'yes', '1']);
const FALSE_WORDS = new Set(['false', 'off', 'no', '0']);

/** The options PostgreSQL accepts for a physical slot: reserve_wal [boolean]. */
function checkPhysicalSlotOptions(options: GenericOption[]): void {
  const seen = new Set<string>();
  for (const o of options) {
    if (o.name !== 'reserve_wal') throw new PgError({ code: SqlState.INTERNAL_ERROR, message: `unrecognized option: ${o.name}` });
    if (seen.has(o.name)) throw new PgError({ code: SqlState.SYNTAX_ERROR, message: 'conflicting or redundant options' });
    seen.add(o.name);
    if (o.value !== null) {
      const v = String(o.value).toLowerCase();
      if (!TRUE_WORDS.has(v) && !FALSE_WORDS.has(v)) throw new PgError({ code: SqlState.SYNTAX_ERROR, message: `${o.name} requires a Boolean value` });
    }
  }
}

function minLsn(a: Lsn | null, b: Lsn | null): Lsn | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}

async function startReplication(
  cmd: Extract<ReplicationCommand, { type: 'START_REPLICATION'; kind: 'physical' }>,
  conn: ReplicationConnection,
  source: WalSource,
  opts: ReplicationOptions,
): Promise<QueryOutcome> {
  const current = source.pgTimeline;
  const tli = cmd.timeline ?? current;
  const start = cmd.startLsn;

  // A past timeline is streamed up to where it forked, then the client is told the next one.
  let historic: { switchpoint: Lsn; nextTli: number } | null = null;
  if (tli !== current) {
    let history = null;
    if (tli < current && source.timelineHistory) {
      const content = await source.timelineHistory(current);
      if (content) {
        try {
          history = parseHistory(content);
        } catch (err) {
          if (err instanceof HistoryParseError) throw new PgError({ code: SqlState.DATA_CORRUPTED, message: `${err.message} (timeline history of timeline ${current})` });
          throw err;
        }
      }
    }
    historic = history ? new TimelineAncestry(current, history).fork(tli) : null;
    if (!historic) throw new PgError({ code: SqlState.INTERNAL_ERROR, message: `requested timeline ${tli} is not in this server's history` });
    if (historic.switchpoint < start) {
      throw new PgError({ code: SqlState.INTERNAL_ERROR, message: `requested starting point ${formatLsn(start)} on timeline ${tli} is not in this server's history`, detail: `This server's history forked from timeline ${tli} at ${formatLsn(historic.switchpoint)}.` });
    }
  }

  // A current timeline that becomes historic while it streams ends at its switch point, as a walsender's does.
  const endOfTimeline = (): Buffer[] => {
    historic ??= source.timelineFork?.(tli) ?? null;
    return historic
      ? [
          rowDescription([int8Field('next_tli'), textField('next_tli_startpos')]),
          dataRow([String(historic.nextTli), formatLsn(historic.switchpoint)]),
        ]
      : [];
  };

  // Nothing left on that timeline: no COPY at all.
  if (historic && start >= historic.switchpoint) {
    send(conn, ...endOfTimeline(), commandComplete('START_STREAMING'), commandComplete('START_REPLICATION'), readyForQuery());
    return 'ready';
  }

  send(conn, copyBothResponse());
  const flush = source.flushLsn();
  if (start > flush) {
    return reportError(
      conn,
      new PgError({ code: SqlState.INTERNAL_ERROR, message: `requested starting point ${formatLsn(start)} is ahead of the WAL flush position of this server ${formatLsn(flush)}` }),
    );
  }

  const recovery = isRecovery(conn);
  const stop = cmd.stopLsn !== null && cmd.stopLsn !== 0n ? cmd.stopLsn : null;
  const plan: StreamPlan = {
    startLsn: start,
    endLsn: minLsn(minLsn(historic?.switchpoint ?? null, stop), recovery ? flush : null),
    follow: recovery ? 'flush' : 'commit',
    timelineEnd: historic || !source.timelineFork ? undefined : () => source.timelineFork?.(tli)?.switchpoint ?? null,
  };
  const reader = source.attachReader({
    applicationName: conn.startupParams.application_name ?? '',
    address: conn.remoteAddress,
    slotName: cmd.slotName ?? undefined,
    startLsn: start,
    timeline: tli,
  });
  let outcome;
  try {
    outcome = await streamWal(conn, source, reader, plan, opts);
  } finally {
    reader.detach();
  }
  switch (outcome.kind) {
    case 'done':
      send(conn, ...endOfTimeline(), commandComplete('START_STREAMING'), commandComplete('START_REPLICATION'), readyForQuery());
      return 'ready';
    case 'error':
      return reportError(conn, outcome.error);
    case 'closed':
      // PostgreSQL ends a stream at shutdown with CommandComplete "COPY 0" and no ReadyForQuery.
      if (outcome.reason === 'shutdown') send(conn, commandComplete('COPY 0'));
      return 'close';
  }
}
