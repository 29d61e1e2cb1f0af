// Simple-query command dispatch. A command is recognised by its first word
// (upper case, as the real walsender's grammar wants) and looked up in the
// command table the daemon put in the server context; anything else is
// answered as PostgreSQL's physical walsender answers SQL (0A000), and the
// connection stays usable.
import { emptyQueryResponse } from '../pq/backend.js';
import { PgError, SqlState } from '../pq/errors.js';
import type { ClientSession } from './context.js';

/**
 * A command handler sends its own result messages. It returns true when the
 * connection goes on (ReadyForQuery is sent after it), false when it has
 * ended the connection (or handed it off for good). Throwing a PgError
 * sends it (ERROR: then ReadyForQuery; FATAL: then close).
 */
export type CommandHandler = (cs: ClientSession, args: string, query: string) => Promise<boolean | 'ready-sent'>;

/** The handlers by keyword (e.g. "IDENTIFY_SYSTEM"); each daemon builds its own. */
export type CommandTable = ReadonlyMap<string, CommandHandler>;

/** Split a query into its keyword and the rest, without one trailing ';'. */
export function parseCommand(query: string): { keyword: string; args: string } {
  let q = query.replace(/^[ \t\r\n\f]+|[ \t\r\n\f]+$/g, '');
  if (q.endsWith(';')) q = q.slice(0, -1).replace(/[ \t\r\n\f]+$/, '');
  const m = /^([A-Za-z_]+)(?:[ \t\r\n\f]+([\s\S]*))?$/.exec(q);
  if (!m) return { keyword: q === '' ? '' : '?', args: q };
  return { keyword: m[1], args: m[2] ?? '' };
}

/** Run one simple query; returns whether the connection continues. */
export async function runQuery(cs: ClientSession, query: string): Promise<boolean> {
  const { keyword, args } = parseCommand(query);
  if (keyword === '') {
    cs.conn.send(emptyQueryResponse());
    cs.conn.readyForQuery();
    return true;
  }
  const handler = cs.ctx.commands.get(keyword);
  if (!handler) {
    const physical = cs.info.replication === 'physical';
    throw new PgError({
      code: SqlState.FEATURE_NOT_SUPPORTED,
      message: physical ? 'cannot execute SQL commands in WAL sender for physical replication' : `walkeeper does not execute SQL commands: "${truncate(query)}" is not a safekeeper command`,
    });
  }
  cs.log.debug({ command: keyword }, 'command');
  const r = await handler(cs, args, query);
  if (r === true) cs.conn.readyForQuery();
  return r !== false;
}

function truncate(s: string): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > 60 ? one.slice(0, 60) + '…' : one;
}
