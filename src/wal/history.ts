// PostgreSQL timeline history files (`%08X.history`): one line per ancestor
// timeline, `<parent tli>\t<switch LSN>\t<reason>`, oldest first.
import { parseLsn, type Lsn } from '../lsn.js';

export interface HistoryEntry {
  /** An ancestor timeline. */
  timeline: number;
  /** Where it ended: the first LSN that belongs to the next timeline. */
  switchpoint: Lsn;
}

export class HistoryParseError extends Error {}

/** `%08X.history`, e.g. 00000002.history. */
export function historyFileName(tli: number): string {
  return tli.toString(16).toUpperCase().padStart(8, '0') + '.history';
}

/** Parse a history file's content (blank lines and `#` comments are skipped, as PostgreSQL does). */
export function parseHistory(content: Uint8Array | string): HistoryEntry[] {
  const text = typeof content === 'string' ? content : Buffer.from(content).toString('utf8');
  const out: HistoryEntry[] = [];
  let prevTli = 0;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^[ \t\r]+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (!m) throw new HistoryParseError(`syntax error in history file: ${raw}`);
    const tli = Number(m[1]);
    if (!Number.isSafeInteger(tli) || tli < 1 || tli > 0xffffffff) throw new HistoryParseError(`invalid timeline in history file: ${raw}`);
    if (tli <= prevTli) throw new HistoryParseError('timeline IDs must be in increasing sequence');
    prevTli = tli;
    out.push({ timeline: tli, switchpoint: parseLsn(m[2]) });
  }
  return out;
}

/**
 * Check a history file given for timeline `tli` (PUT_TIMELINE_HISTORY):
 * parseable, `tli` at least 2, every listed timeline below `tli`. Returns
 * the entries; throws HistoryParseError naming the problem.
 */
export function validateHistory(tli: number, content: Uint8Array | string): HistoryEntry[] {
  if (!Number.isInteger(tli) || tli < 2 || tli > 0xffffffff) throw new HistoryParseError(`invalid timeline ${tli} for a history file: an integer from 2 to 4294967295`);
  const entries = parseHistory(content);
  if (entries.length === 0) throw new HistoryParseError(`the history of timeline ${tli} lists no parent timeline`);
  for (const e of entries) {
    if (e.timeline >= tli) throw new HistoryParseError(`the history of timeline ${tli} lists timeline ${e.timeline}, which is not older`);
  }
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].switchpoint < entries[i - 1].switchpoint) throw new HistoryParseError(`the history of timeline ${tli} has switch points out of order`);
  }
  return entries;
}
