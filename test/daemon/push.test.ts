// A proposer pushes real WAL (from a PostgreSQL 15 pg_wal) in chunks of
// random sizes, pipelined; the stored segments are byte-identical to the
// source up to the acknowledged position, responses come in order and only
// for durable WAL, and the end of WAL survives a restart.
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatLsn, segmentFileName, segmentNumber, type Lsn } from '../../src/lsn.js';
import { decodeControlFile } from '../../src/protocol/control-file.js';
import {
  commonPrefix,
  elect,
  PushClient,
  realWal,
  startDaemon,
  storedWal,
  tempDir,
  TENANT,
  TIMELINE,
  type RealWal,
} from './helpers.js';
import { xorshift32 } from '../helpers/support.js';

interface PushResult {
  acked: Lsn;
  appends: number;
  seconds: number;
}

/** Push wal[from, to) in random chunks (1 B .. 128 KiB), up to `window` in flight; checks every response. */
export async function push(c: PushClient, wal: RealWal, nodeId: { term: bigint; uuid: Uint8Array }, from: Lsn, to: Lsn, seed: number, window = 64): Promise<PushResult> {
  const rnd = xorshift32(seed);
  const ends: Lsn[] = [];
  let pos = from;
  let acked = from;
  let inflight = 0;
  const started = performance.now();
  let appends = 0;
  const base = wal.startLsn;
  while (pos < to || inflight > 0) {
    while (pos < to && inflight < window) {
      const r = rnd();
      // Mostly big chunks, some tiny ones; never aligned on purpose.
      const size = r < 0.2 ? 1 + Math.floor(rnd() * 200) : 1 + Math.floor(rnd() * 131072);
      const end = pos + BigInt(size) > to ? to : pos + BigInt(size);
      c.append({
        senderId: nodeId,
        beginLsn: pos,
        endLsn: end,
        restartLsn: wal.startLsn,
        commitLsn: acked,
        wal: wal.bytes.subarray(Number(pos - base), Number(end - base)),
      });
      ends.push(end);
      pos = end;
      inflight++;
      appends++;
    }
    const resp = await c.response();
    const want = ends.shift()!;
    if (resp.flushLsn !== want) throw new Error(`response flush_lsn ${formatLsn(resp.flushLsn)}, expected ${formatLsn(want)} (in order)`);
    acked = resp.flushLsn;
    inflight--;
  }
  return { acked, appends, seconds: (performance.now() - started) / 1000 };
}

t.test('real WAL pushed in random chunks is stored byte-identical and survives a restart', async (t) => {
  const wal = await realWal(t);
  const dataDir = tempDir(t);
  let d = await startDaemon(t, { dataDir });
  const c = await PushClient.connect(d.pgPort);
  const { greeting, nodeId } = await elect(c, wal);
  t.equal(greeting.flushLsn, 0n, 'a new timeline has no WAL');
  t.equal(greeting.magic, 0xcafeceef);
  const r = await push(c, wal, nodeId, wal.startLsn, wal.endLsn, 1);
  t.equal(r.acked, wal.endLsn, 'everything acknowledged');
  t.comment(`pushed ${Number(wal.endLsn - wal.startLsn)} bytes in ${r.appends} appends, ${r.seconds.toFixed(2)} s`);

  const len = Number(wal.endLsn - wal.startLsn);
  const stored = storedWal(dataDir, wal.startLsn, len, wal.segSize);
  t.equal(commonPrefix(stored, wal.bytes.subarray(0, len)), len, 'stored WAL identical to the source up to the acknowledged end');

  const dir = join(dataDir, TENANT, TIMELINE);
  const files = readdirSync(dir).sort();
  const lastSeg = segmentNumber(wal.endLsn, wal.segSize);
  const firstSeg = segmentNumber(wal.startLsn, wal.segSize);
  for (let s = firstSeg; s < lastSeg; s++) t.ok(files.includes(segmentFileName(1, s, wal.segSize)), `segment ${s} complete and renamed`);
  t.ok(files.includes(segmentFileName(1, lastSeg, wal.segSize) + '.partial'), 'the last segment stays .partial');
  t.notOk(files.some((f) => f.endsWith('.tmp')), 'no temp files');
  for (const f of files.filter((f) => /^[0-9A-F]{24}/.test(f))) t.equal(readFileSync(join(dir, f)).length, wal.segSize, `${f} full size`);
  const control = decodeControlFile(readFileSync(join(dir, 'safekeeper.control')), 'safekeeper.control');
  t.equal(control.formatVersion, 2);
  t.equal(control.server.nodeId.term, nodeId.term, 'the vote is in the control file');
  t.equal(control.epoch, nodeId.term, 'epoch switched to the vote epoch');
  t.equal(control.server.systemId, wal.systemId);

  // End of stream: the session ends cleanly and the connection is usable.
  c.append({ senderId: nodeId, beginLsn: 0n, endLsn: 0n, restartLsn: 0n, commitLsn: 0n, wal: new Uint8Array(0) });
  t.equal((await c.raw.readUntil('c')).map((m) => m.tag).join(''), 'c', 'the end request is answered with CopyDone');
  c.raw.write(Buffer.from('6300000004', 'hex'));
  const tags = (await c.raw.readUntil('Z')).map((m) => m.tag).join('');
  t.equal(tags, 'CZ', 'after the client CopyDone: CommandComplete, ReadyForQuery');
  c.close();

  const status = (await (await fetch(`http://127.0.0.1:${d.httpPort}/v1/status`)).json()) as Record<string, unknown>;
  t.equal(status.timelines, 1);
  t.equal(status.listen_pg, `127.0.0.1:${d.pgPort}`);

  // A new greeting reports the end of the last record.
  const c2 = await PushClient.connect(d.pgPort);
  await c2.startWalPush();
  const { serverInfo } = await import('./helpers.js');
  const g2 = await c2.greet(serverInfo(wal));
  t.equal(formatLsn(g2.flushLsn), formatLsn(wal.endLsn), 'flush_lsn from the scan = end of the last record');
  c2.close();

  // Clean stop, restart: the timeline is loaded and the end found again.
  const ex = await d.stop();
  t.equal(ex.code, 0, 'SIGTERM: exit 0');
  t.notOk(existsSync(join(dataDir, 'safekeeper.pid')), 'lock released');
  d = await startDaemon(t, { dataDir });
  const loaded = d.logs.find((l) => l.msg === 'timeline loaded');
  t.equal(loaded?.walEnd, formatLsn(wal.endLsn), 'start-up scan finds the end');
  const c3 = await PushClient.connect(d.pgPort);
  await c3.startWalPush();
  const g3 = await c3.greet(serverInfo(wal));
  t.equal(g3.flushLsn, wal.endLsn);
  t.equal(g3.server.nodeId.term, nodeId.term, 'vote survived the restart');
  t.equal(g3.epoch, nodeId.term);
  c3.close();
  await d.stop();
});

t.test('a new leader rewrites from before flush_lsn: the tail is truncated first', async (t) => {
  const wal = await realWal(t);
  const dataDir = tempDir(t);
  const d = await startDaemon(t, { dataDir });
  let c = await PushClient.connect(d.pgPort);
  let e = await elect(c, wal);
  const mid = wal.startLsn + BigInt(3 * wal.segSize + 777);
  await push(c, wal, e.nodeId, wal.startLsn, mid, 2);
  c.close();
  // The next leader streams from an earlier point with different bytes (a divergent history).
  c = await PushClient.connect(d.pgPort);
  e = await elect(c, wal);
  t.ok(e.greeting.flushLsn <= mid && e.greeting.flushLsn > wal.startLsn, `flush_lsn ${formatLsn(e.greeting.flushLsn)} at a record end`);
  const from = wal.startLsn + BigInt(wal.segSize + 5000);
  const other = Buffer.from(wal.bytes.subarray(Number(from - wal.startLsn), Number(from - wal.startLsn) + 1000)).map((b) => b ^ 0x5a);
  c.append({ senderId: e.nodeId, beginLsn: from, endLsn: from + 1000n, restartLsn: wal.startLsn, commitLsn: 0n, wal: other });
  const resp = await c.response();
  t.equal(resp.flushLsn, from + 1000n);
  c.close();
  const dir = join(dataDir, TENANT, TIMELINE);
  const files = readdirSync(dir).sort();
  const seg = segmentNumber(from, wal.segSize);
  t.same(
    files.filter((f) => /^[0-9A-F]{24}/.test(f)),
    [segmentFileName(1, seg - 1n, wal.segSize), segmentFileName(1, seg, wal.segSize) + '.partial'],
    'later segments removed, the cut segment is .partial again',
  );
  const stored = storedWal(dataDir, wal.startLsn, Number(from - wal.startLsn) + wal.segSize, wal.segSize);
  const cut = Number(from - wal.startLsn);
  t.equal(commonPrefix(stored, wal.bytes), cut, 'old WAL kept before the cut');
  t.same(stored.subarray(cut, cut + 1000), other, 'new leader bytes');
  t.ok(stored.subarray(cut + 1000, Number(BigInt(segmentNumber(from, wal.segSize) + 1n) * BigInt(wal.segSize) - wal.startLsn)).every((b) => b === 0), 'no stale byte after the new data');
  await d.stop();
});

t.test('throughput: group commit with sync and with --no-sync', async (t) => {
  const wal = await realWal(t);
  const rows: string[] = [];
  for (const noSync of [false, true]) {
    const dataDir = tempDir(t);
    const d = await startDaemon(t, { dataDir, noSync });
    const c = await PushClient.connect(d.pgPort);
    const { nodeId } = await elect(c, wal);
    const r = await push(c, wal, nodeId, wal.startLsn, wal.endLsn, 3, 64);
    c.close();
    await d.stop();
    const end = d.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('WAL push: client disconnected'));
    const mb = Number(wal.endLsn - wal.startLsn) / 1e6;
    const syncs = Number(end?.syncs ?? 0);
    rows.push(
      `${noSync ? '--no-sync' : 'sync     '}  ${r.appends} appends in ${r.seconds.toFixed(2)} s: ${(r.appends / r.seconds).toFixed(0)} appends/s, ${(mb / r.seconds).toFixed(1)} MB/s, ${syncs} syncs (${syncs ? (r.appends / syncs).toFixed(1) : '-'} appends per sync)`,
    );
    t.equal(r.acked, wal.endLsn);
    if (!noSync) t.ok(syncs > 0 && syncs < r.appends, `group commit: ${syncs} syncs for ${r.appends} appends`);
  }
  for (const row of rows) t.comment(row);
});
