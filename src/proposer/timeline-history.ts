// PostgreSQL timeline history as the proposer moves it around: read with
// TIMELINE_HISTORY over a replication connection (from the primary, or from
// a safekeeper), handed to safekeepers with PUT_TIMELINE_HISTORY on a push
// connection before the greeting that moves them (docs/protocol.md §7.10).
import { parseHistory, type HistoryEntry } from '../wal/history.js';
import { TimelineAncestry } from '../wal/timeline-files.js';
import type { Lsn } from '../lsn.js';
import type { PgClient } from './pg-client.js';

/** One timeline's history file. */
export interface TimelineHistory {
  timeline: number;
  /** The file's text, as PostgreSQL wrote it. */
  content: string;
  entries: HistoryEntry[];
}

/** `TIMELINE_HISTORY tli` on an open replication connection; throws when the server has none. */
export async function readTimelineHistory(client: PgClient, tli: number): Promise<TimelineHistory> {
  const r = await client.query(`TIMELINE_HISTORY ${tli}`);
  const content = r.rows[0]?.[1];
  if (content === null || content === undefined) throw new Error(`TIMELINE_HISTORY ${tli}: no content`);
  return { timeline: tli, content, entries: parseHistory(content) };
}

/** The PUT_TIMELINE_HISTORY simple query: the content as an SQL string literal. */
export function putTimelineHistoryQuery(tli: number, content: string): string {
  return `PUT_TIMELINE_HISTORY ${tli} '${content.replace(/'/g, "''")}'`;
}

/** Where timeline `ancestor` ended in `history`'s ancestry; null when it is not an ancestor. */
export function forkPoint(history: TimelineHistory, ancestor: number): Lsn | null {
  return new TimelineAncestry(history.timeline, history.entries).fork(ancestor)?.switchpoint ?? null;
}
