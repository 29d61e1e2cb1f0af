// pg_waldump (PostgreSQL 15) as the oracle for where WAL ends and which
// records it holds, plus helpers to make WAL and damaged copies of it.
import { copyFileSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatLsn, maxAlign, parseLsn, parseSegmentFileName, segmentNumber, segmentStart, type Lsn } from '../../src/lsn.js';
import { chownToPg, pgBin, pgTempDir, runPg } from '../helpers/pg.js';

export interface DumpedRecord {
  rmgr: string;
  tot: number;
  xid: number;
  lsn: Lsn;
  prev: Lsn;
  desc: string;
}

const RECORD_LINE = /^rmgr: (\S+)\s+len \(rec\/tot\):\s*\d+\/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+), prev ([0-9A-F]+\/[0-9A-F]+), desc: (\S+)/;

export function parseDumpLine(line: string): DumpedRecord | null {
  const m = RECORD_LINE.exec(line);
  if (!m) return null;
  return { rmgr: m[1], tot: Number(m[2]), xid: Number(m[3]), lsn: parseLsn(m[4]), prev: parseLsn(m[5]), desc: m[6] };
}

export function parseDump(stdout: string): DumpedRecord[] {
  const out: DumpedRecord[] = [];
  for (const line of stdout.split('\n')) {
    const r = parseDumpLine(line);
    if (r) out.push(r);
  }
  return out;
}

/** Records pg_waldump prints from `start` (at most `limit`). */
export async function waldumpRecords(dir: string, tli: number, start: Lsn, limit?: number): Promise<{ records: DumpedRecord[]; stderr: string; code: number | null }> {
  const args = ['-p', dir, '-t', String(tli), '-s', formatLsn(start)];
  if (limit) args.push('-n', String(limit));
  const r = await runPg('pg_waldump', args, { timeoutMs: 300_000 });
  return { records: parseDump(r.stdout), stderr: r.stderr, code: r.code };
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The last record pg_waldump prints from `start` (without holding all of its output). */
async function lastDumpedRecord(dir: string, tli: number, start: Lsn): Promise<DumpedRecord | null> {
  const cmd = `${shellQuote(pgBin('pg_waldump'))} -p ${shellQuote(dir)} -t ${tli} -s ${formatLsn(start)} 2>/dev/null | tail -n 1`;
  const r = await runPg('/bin/sh', ['-c', cmd], { timeoutMs: 300_000 });
  return parseDumpLine(r.stdout.trim());
}

/**
 * Where the record after `r` starts. Page headers inside the record are not
 * counted in tot_len, so walk its bytes page by page (MAXALIGN(lsn + tot)
 * alone is wrong for a record that crosses a page).
 */
export function recordEnd(r: DumpedRecord, segSize: number): Lsn {
  let pos = r.lsn;
  let left = BigInt(r.tot);
  while (left > 0n) {
    const inPage = pos % 8192n;
    if (inPage === 0n) {
      pos += pos % BigInt(segSize) === 0n ? 40n : 24n;
      continue;
    }
    const take = 8192n - inPage < left ? 8192n - inPage : left;
    pos += take;
    left -= take;
  }
  const end = maxAlign(pos);
  if (r.rmgr === 'XLOG' && r.desc === 'SWITCH') return segmentStart(segmentNumber(end + BigInt(segSize) - 1n, segSize), segSize);
  return end;
}

export interface OracleEnd {
  /** null when pg_waldump found no valid record at all. */
  endLsn: Lsn | null;
  lastRecordLsn: Lsn | null;
  /** pg_waldump's final error line (or ''). */
  message: string;
}

/**
 * Where pg_waldump says WAL ends, read from `start`. Its final error names
 * the last good record ("error in WAL record at A: ..."); when it stops on a
 * missing file instead, the last record printed for the last segment is
 * used. The end is MAXALIGN(A + tot_len), or the next segment start if A is
 * a SWITCH. A final `-s A -e END` run must then exit 0.
 */
export async function waldumpEnd(dir: string, tli: number, start: Lsn, segSize: number): Promise<OracleEnd> {
  const q = await runPg('pg_waldump', ['-q', '-p', dir, '-t', String(tli), '-s', formatLsn(start)], { timeoutMs: 300_000 });
  const message = q.stderr.trim().split('\n').at(-1) ?? '';
  if (/could not find a valid record/.test(message)) return { endLsn: null, lastRecordLsn: null, message };
  let last: DumpedRecord | null = null;
  const m = /error in WAL record at ([0-9A-F]+\/[0-9A-F]+)/.exec(message);
  if (m) {
    const one = await waldumpRecords(dir, tli, parseLsn(m[1]), 1);
    last = one.records[0] ?? null;
  } else {
    const missing = /could not find file "([0-9A-F]{24})"/.exec(message);
    if (!missing) throw new Error(`unexpected pg_waldump result (exit ${q.code}): ${message}`);
    const seg = parseSegmentFileName(missing[1], segSize)!;
    const from = seg.segno - 1n >= segmentNumber(start, segSize) ? segmentStart(seg.segno - 1n, segSize) : start;
    last = await lastDumpedRecord(dir, tli, from);
  }
  if (!last) throw new Error(`pg_waldump printed no record: ${message}`);
  const endLsn = recordEnd(last, segSize);
  const check = await runPg('pg_waldump', ['-q', '-p', dir, '-t', String(tli), '-s', formatLsn(last.lsn), '-e', formatLsn(endLsn)]);
  if (check.code !== 0) throw new Error(`pg_waldump -s ${formatLsn(last.lsn)} -e ${formatLsn(endLsn)} exited ${check.code}: ${check.stderr.trim()}`);
  return { endLsn, lastRecordLsn: last.lsn, message };
}

/** A directory the postgres user can read, holding copies of `names` from `from` (optionally renamed). */
const copies: string[] = [];

/** Remove every directory copyWal made (call at teardown). */
export function removeCopies(): void {
  for (const d of copies.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function copyWal(from: string, names: (string | [string, string])[]): string {
  const dir = pgTempDir('wk-wal-');
  copies.push(dir);
  for (const n of names) {
    const [src, dst] = typeof n === 'string' ? [n, n] : n;
    copyFileSync(join(from, src), join(dir, dst));
  }
  chownToPg(dir);
  return dir;
}

/** Apply `damage` to a file in place. */
export function damageFile(path: string, damage: (b: Buffer) => void): void {
  const b = readFileSync(path);
  damage(b);
  writeFileSync(path, b);
}

/** Segment file names (full, not .partial) in a directory, sorted. */
export function segmentNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => /^[0-9A-F]{24}$/.test(n))
    .sort();
}
