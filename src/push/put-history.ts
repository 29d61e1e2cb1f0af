// PUT_TIMELINE_HISTORY <tli> '<content>' (docs/protocol.md §3.4): a proposer
// hands the safekeeper the history file of the PostgreSQL timeline its
// primary is on, before it greets from that timeline. Stored durably once;
// the same content again is a success, different content an error.
import { commandComplete } from '../pq/backend.js';
import { PgError, SqlState } from '../pq/errors.js';
import { requireTimeline } from '../server/context.js';
import type { CommandHandler } from '../server/dispatch.js';
import { toPgError } from '../server/errors.js';
import { HistoryConflictError } from '../storage/history-files.js';
import { TimelineFailedError } from '../timeline/timeline.js';
import { HistoryParseError, validateHistory } from '../wal/history.js';

export const PUT_TIMELINE_HISTORY = 'PUT_TIMELINE_HISTORY';

/** The arguments: a timeline number and the file's text as an SQL string literal (`''` for `'`). */
export function parsePutHistoryArgs(args: string): { tli: number; content: string } {
  const m = /^(\d+)[ \t\r\n\f]+'((?:[^']|'')*)'$/.exec(args);
  if (!m) {
    throw new PgError({ code: SqlState.SYNTAX_ERROR, message: `syntax error: expected PUT_TIMELINE_HISTORY <timeline> '<history file content>'` });
  }
  return { tli: Number(m[1]), content: m[2].replace(/''/g, "'") };
}

const putTimelineHistory: CommandHandler = async (cs, args) => {
  const key = requireTimeline(cs.named);
  const { tli, content } = parsePutHistoryArgs(args);
  try {
    validateHistory(tli, content);
  } catch (err) {
    if (err instanceof HistoryParseError) throw new PgError({ code: SqlState.INVALID_PARAMETER_VALUE, message: `invalid timeline history: ${err.message}` });
    throw err;
  }
  const tl = cs.ctx.registry.getOrCreate(key);
  if (tl.failure) throw new TimelineFailedError(tl.name, tl.failure);
  try {
    const done = tl.putHistory(tli, Buffer.from(content, 'utf8'));
    cs.log.info({ timeline: tl.name, pgTimeline: tli, done }, 'timeline history stored');
  } catch (err) {
    if (err instanceof HistoryConflictError) throw new PgError({ code: SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE, message: err.message });
    throw toPgError(err, 'ERROR') ?? err;
  }
  cs.conn.send(commandComplete(PUT_TIMELINE_HISTORY));
  return true;
};

/** The PUT_TIMELINE_HISTORY command, for a daemon's command table. */
export function putHistoryCommands(): Map<string, CommandHandler> {
  return new Map([[PUT_TIMELINE_HISTORY, putTimelineHistory]]);
}
