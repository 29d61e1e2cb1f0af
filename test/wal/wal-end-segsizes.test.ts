// End of WAL with 1 MiB and 64 MiB segments, a record larger than a whole
// segment, and a real pg_receivewal directory (full segments plus a
// zero-padded .partial). walkeeper must match pg_waldump exactly, and the
// walker must list every record pg_waldump lists.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { formatLsn, parseLsn, parseSegmentFileName, segmentNumber, segmentStart } from '../../src/lsn.js';
import { findWalEnd } from '../../src/wal/wal-end.js';
import { walkRecords } from '../../src/wal/walk.js';
import { rmgrName } from '../../src/wal/rmgr.js';
import { pgBin, pgSpawnOptions, pgTempDir, startCluster } from '../helpers/pg.js';
import { copyWal, removeCopies, segmentNames, waldumpEnd, waldumpRecords } from './pg-oracle.js';
import { scanDir } from './scan-helpers.js';

t.teardown(removeCopies);

const MB = 1 << 20;

t.test('1 MiB segments: a 2.2 MB record spans a whole segment; pg_receivewal output', async (t) => {
  const SEG = MB;
  const pg = await startCluster(t, { walSegSizeMb: 1, conf: { autovacuum: 'off', wal_keep_size: '1GB' } });
  const recvDir = pgTempDir('wk-recv-');
  const recv = spawn(pgBin('pg_receivewal'), ['-D', recvDir, '-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '--no-loop', '-n'], pgSpawnOptions({ stdio: 'ignore' }));
  const recvExit = new Promise((resolve) => recv.on('exit', resolve));
  t.teardown(() => {
    if (recv.exitCode === null) recv.kill('SIGKILL');
  });

  await pg.pgbench(['-i', '-q', '-s', '1']);
  await pg.sql("select pg_logical_emit_message(false, 'wk', repeat('x', 2200000))");
  await pg.sql('create table big (v text); alter table big alter v set storage external');
  await pg.sql("insert into big select string_agg(md5(g::text || r::text), '') from generate_series(1, 3000) g, generate_series(1, 3) r group by r");
  await pg.sql('select pg_switch_wal()');
  await pg.pgbench(['-n', '-t', '200']);
  const flushed = parseLsn(await pg.sql('select pg_current_wal_flush_lsn()'));

  // pg_receivewal: wait until it has everything flushed so far, then stop it
  const deadline = Date.now() + 30_000;
  let received = await findWalEnd(recvDir).catch(() => null);
  while ((!received || received.endLsn < flushed) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    received = await findWalEnd(recvDir).catch(() => null);
  }
  recv.kill('SIGINT');
  await recvExit;
  await pg.stop();

  const names = segmentNames(pg.walDir);
  const dir = copyWal(pg.walDir, names);
  const oracle = await waldumpEnd(dir, 1, segmentStart(parseSegNo(names[0]), SEG), SEG);
  const ours = await findWalEnd(dir);
  t.equal(ours.walSegSize, SEG, 'segment size read from the long page header');
  t.equal(formatLsn(ours.endLsn), formatLsn(oracle.endLsn!), `end (${oracle.message})`);
  t.equal(ours.lastRecordLsn, oracle.lastRecordLsn);

  // every record, as pg_waldump lists them
  const dumped = (await waldumpRecords(dir, 1, segmentStart(parseSegNo(names[0]), SEG))).records;
  const walked = await walkRecords(dir, { limit: 1_000_000 });
  t.equal(walked.records.length, dumped.length, `${dumped.length} records`);
  t.same(
    walked.records.map((r) => `${formatLsn(r.lsn)} ${r.totLen} ${rmgrName(r.rmid)} ${r.xid}`),
    dumped.map((r) => `${formatLsn(r.lsn)} ${r.tot} ${r.rmgr} ${r.xid}`),
  );
  const hugeAt = walked.records.findIndex((r) => r.rmid === 21 && r.totLen > 2_200_000);
  t.ok(hugeAt > 0, 'the 2.2 MB logical message is listed');
  const huge = walked.records[hugeAt];
  const inside = segmentNumber(huge.lsn, SEG) + 1n;
  t.ok(segmentNumber(walked.records[hugeAt + 1].lsn, SEG) > inside, 'it spans a whole segment');
  // starting at a segment that holds nothing but its continuation: the first record is the one after it
  const fromInside = await walkRecords(dir, { startLsn: segmentStart(inside, SEG), limit: 3 });
  const dumpedInside = (await waldumpRecords(dir, 1, segmentStart(inside, SEG), 3)).records;
  t.same(
    fromInside.records.map((r) => r.lsn),
    dumpedInside.map((r) => r.lsn),
  );
  t.equal(fromInside.records[0].lsn, walked.records[hugeAt + 1].lsn);
  const endFromInside = await findWalEnd(dir, { startLsn: segmentStart(inside, SEG) });
  t.equal(endFromInside.endLsn, ours.endLsn, 'same end when starting inside the record');
  t.same({ ...(await scanDir('ts', dir, { seed: 5, maxChunk: 3000 })), position: 0n }, { ...(await scanDir('wasm', dir, { seed: 6 })), position: 0n }, 'twin agrees');

  // pg_receivewal's directory: full segments and the zero-padded .partial it was writing
  const recvNames = readdirSync(recvDir);
  t.ok(recvNames.some((n) => n.endsWith('.partial')), `pg_receivewal left a .partial (${recvNames.length} files)`);
  const fromRecv = await findWalEnd(recvDir);
  t.ok(fromRecv.endLsn >= flushed, `pg_receivewal received up to the server's flush position ${formatLsn(flushed)}`);
  const plain = copyWal(
    recvDir,
    recvNames.filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n)).map((n) => [n, n.replace('.partial', '')] as [string, string]),
  );
  const recvFirst = segmentNames(plain)[0];
  const o = await waldumpEnd(plain, 1, segmentStart(parseSegNo(recvFirst), SEG), SEG);
  t.equal(formatLsn(fromRecv.endLsn), formatLsn(o.endLsn!), `pg_receivewal dir: end (${o.message})`);
  t.equal(fromRecv.stopReason, 'zero-length', 'the .partial ends in zeros');
});

t.test('64 MiB segments', async (t) => {
  const SEG = 64 * MB;
  const pg = await startCluster(t, { walSegSizeMb: 64, conf: { autovacuum: 'off' } });
  await pg.pgbench(['-i', '-q', '-s', '1']);
  await pg.pgbench(['-n', '-t', '300']);
  await pg.stop();
  const names = segmentNames(pg.walDir);
  const dir = copyWal(pg.walDir, names);
  const ours = await findWalEnd(dir);
  const oracle = await waldumpEnd(dir, 1, segmentStart(parseSegNo(names[0], SEG), SEG), SEG);
  t.equal(ours.walSegSize, SEG);
  t.equal(formatLsn(ours.endLsn), formatLsn(oracle.endLsn!), `end (${oracle.message})`);
  t.equal(ours.lastRecordLsn, oracle.lastRecordLsn);
  t.equal(ours.segmentName, names[0].slice(0, 8) + ours.segmentName.slice(8), 'segment name on timeline 1');
  const ts = await scanDir('ts', dir, { seed: 11, maxChunk: 1 << 20 });
  t.equal(ts.endLsn, ours.endLsn, 'twin agrees');
  t.equal(ts.recordCount, ours.recordCount);
});

function parseSegNo(name: string, segSize = MB): bigint {
  return parseSegmentFileName(name, segSize)!.segno;
}
