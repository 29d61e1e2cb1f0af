// PostgreSQL timeline history files (`%08X.history`): one line per ancestor
// timeline, `<parent tli>\t<switch LSN>\t<reason>`, oldest first.
import { LsnError, parseLsn, type Lsn } from '../lsn.js';

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
    let switchpoint: Lsn;
    try {
      switchpoint = parseLsn(m[2]);
    } catch (err) {
      if (err instanceof LsnError) throw new HistoryParseError(`invalid switch point in history file: ${raw}`);
      throw err;
    }
    out.push({ timeline: tli, switchpoint });
  }
  return out;
}

/**
 * Where timeline `tli` ends in the history of `current`, and which timeline
 * follows it. Null when `tli` is not an ancestor of `current`.
 */
export function timelineSwitchPoint(tli: number, current: number, history: HistoryEntry[]): { switchpoint: Lsn; nextTli: number } | null {
  for (let i = 0; i < history.length; i++) {
    if (history[i].timeline === tli) {
      const nextTli = i + 1 < history.length ? history[i + 1].timeline : current;
      return { switchpoint: history[i].switchpoint, nextTli };
    }
  }
  return null;
}
