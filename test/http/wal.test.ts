// GET .../wal against pg_waldump: real PostgreSQL 15 WAL pushed into a
// daemon, then listed by the API (the wasm record walker over the stored
// segments) and by pg_waldump over a copy of the same segment files, for
// several ranges: from a segment start, from inside a record (both move to
// the next record), from a record start, across segment boundaries, and
// over WAL with pg_switch_wal() in it.
import t, { type Test } from 'tap';
import { copyFileSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon } from '../../src/daemon/daemon.js';
import { silentLogger } from '../../src/log.js';
import { formatLsn, parseLsn, segmentFileName, segmentNumber, type Lsn } from '../../src/lsn.js';
import { realWal, tempDir, type RealWal } from '../daemon/helpers.js';
import { chownToPg, pgTempDir, runPg } from '../helpers/pg.js';
import { makePrimaryWal, SEG } from '../replication/primary.js';
import { electProposer, pushWal, TENANT, TIMELINE } from './helpers.js';

interface Rec {
  rmgr: string;
  total_length: number;
  xid: number;
  lsn: string;
  prev: string;
}

const LINE = /^rmgr: (\S+)\s+len \(rec\/tot\):\s*\d+\/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+), prev ([0-9A-F]+\/[0-9A-F]+), desc: /;

async function waldump(dir: string, from: Lsn, n: number): Promise<{ records: Rec[]; stderr: string }> {
  const r = await runPg('pg_waldump', ['-p', dir, '-t', '1', '-s', formatLsn(from), '-n', String(n)]);
  const records: Rec[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    records.push({ rmgr: m[1], total_length: Number(m[2]), xid: Number(m[3]), lsn: formatLsn(parseLsn(m[4])), prev: formatLsn(parseLsn(m[5])) });
  }
  return { records, stderr: r.stderr };
}

/** The timeline's segment files as pg_waldump reads them (`.partial` dropped from the names). */
function copyForWaldump(t: Test, dataDir: string): string {
  const src = join(dataDir, TENANT, TIMELINE);
  const out = pgTempDir('wk-waldump-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  for (const f of readdirSync(src)) {
    if (!/^[0-9A-F]{24}(\.partial)?$/.test(f)) continue;
    copyFileSync(join(src, f), join(out, f.replace('.partial', '')));
  }
  chownToPg(out);
  return out;
}

async function pushedDaemon(t: Test, wal: RealWal, end: Lsn): Promise<{ daemon: Daemon; dataDir: string }> {
  const dataDir = tempDir(t, 'wk-http-wal-');
  const daemon = await Daemon.start({ dataDir, listenPg: { host: '127.0.0.1', port: 0 }, listenHttp: { host: '127.0.0.1', port: 0 }, noSync: true, log: silentLogger() });
  t.teardown(() => daemon.stop());
  const p = await electProposer(daemon.pgAddress!.port, wal);
  const r = await pushWal(p, wal, wal.startLsn, end, 128 * 1024, 32);
  t.equal(r.acked, end, `pushed ${formatLsn(wal.startLsn)}..${formatLsn(end)}`);
  await p.client.endStream();
  p.client.close();
  return { daemon, dataDir };
}

async function api(daemon: Daemon, from: Lsn, limit: number) {
  const r = await daemon.http!.inject({ method: 'GET', url: `/v1/tenant/${TENANT}/timeline/${TIMELINE}/wal?from=${formatLsn(from)}&limit=${limit}` });
  if (r.statusCode !== 200) throw new Error(`${r.statusCode}: ${r.body}`);
  return r.json() as { records: Array<Rec & { crc_valid: boolean; rmgr_id: number; info: number }>; next_lsn: string; more: boolean; end_reason: string };
}

async function compare(t: Test, daemon: Daemon, dumpDir: string, from: Lsn, limit: number, what: string): Promise<void> {
  const [mine, theirs] = await Promise.all([api(daemon, from, limit), waldump(dumpDir, from, limit)]);
  const project = (r: Rec): Rec => ({ rmgr: r.rmgr, total_length: r.total_length, xid: r.xid, lsn: r.lsn, prev: r.prev });
  t.ok(theirs.records.length > 0, `${what}: pg_waldump listed ${theirs.records.length} records (${theirs.stderr.trim().split('\n')[0] ?? ''})`);
  t.same(mine.records.map(project), theirs.records, `${what}: ${mine.records.length} records from ${formatLsn(from)} identical to pg_waldump's`);
  t.ok(mine.records.every((r) => r.crc_valid), `${what}: every CRC valid`);
}

t.test('pgbench WAL (1 MiB segments)', async (t) => {
  const wal = await realWal(t);
  const { daemon, dataDir } = await pushedDaemon(t, wal, wal.endLsn);
  const dump = copyForWaldump(t, dataDir);
  const ends = wal.recordEnds;
  const seg = BigInt(wal.segSize);
  const mid = ends[Math.floor(ends.length / 2)];
  await compare(t, daemon, dump, wal.startLsn, 300, 'from the first segment start');
  await compare(t, daemon, dump, mid, 200, 'from a record start');
  await compare(t, daemon, dump, mid + 13n * 8n, 200, 'from inside a record');
  await compare(t, daemon, dump, wal.startLsn + 5n * seg + 8192n, 50, 'from a page start inside a segment');
  await compare(t, daemon, dump, wal.startLsn + 3n * seg - 2048n, 2000, 'across a segment boundary');
  await compare(t, daemon, dump, wal.startLsn + 4n * seg, 10_000, 'over several segments (10000 records)');
  // The end of the stored WAL: the API stops at the durable end, as pg_waldump at the end of valid WAL.
  const tail = await api(daemon, ends[ends.length - 4], 10_000);
  t.equal(tail.records.length, 3);
  t.equal(tail.next_lsn, formatLsn(wal.endLsn));
  t.equal(tail.more, false);
});

t.test('WAL with pg_switch_wal() (segment tails after XLOG SWITCH)', async (t) => {
  const p = await makePrimaryWal(t);
  const first = segmentNumber(p.s0, SEG);
  const last = segmentNumber(p.end, SEG);
  const names: string[] = [];
  for (let s = first; s < last; s++) names.push(segmentFileName(1, s, SEG));
  const bytes = Buffer.concat(names.map((n) => readFileSync(join(p.walCopy, n))));
  const startLsn = first * BigInt(SEG);
  const wal: RealWal = { bytes, startLsn, endLsn: p.end, segSize: SEG, systemId: p.systemId, recordEnds: [] };
  const { daemon, dataDir } = await pushedDaemon(t, wal, p.end);
  const dump = copyForWaldump(t, dataDir);
  const sw = (await api(daemon, startLsn, 10_000)).records.findIndex((r) => r.rmgr === 'XLOG' && (r.info & 0xf0) === 0x40);
  t.ok(sw >= 0, 'an XLOG SWITCH record is listed');
  await compare(t, daemon, dump, startLsn, 10_000, 'from the first segment, through XLOG SWITCH');
  const mid = p.mid;
  // In the tail a switch left, neither finds a record (pg_waldump: "could not find a valid record").
  const inTail = await api(daemon, mid - 4096n, 500);
  t.same([inTail.records, inTail.more, inTail.next_lsn], [[], false, formatLsn(mid - 4096n)], `the API lists none either (stopped: ${inTail.end_reason})`);
  const dumped = await waldump(dump, mid - 4096n, 500);
  t.same(dumped.records, []);
  t.match(dumped.stderr, 'could not find a valid record');
  await compare(t, daemon, dump, mid, 500, 'from the segment after a switch');
});
