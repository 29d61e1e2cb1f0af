// A real PostgreSQL promotion through the real daemon. A primary and its
// streaming standby; the safekeeper is fed the primary's timeline-1 WAL up
// to the switch point, then (after PUT_TIMELINE_HISTORY 2) the promoted
// standby's timeline-2 WAL from it. pg_receivewal and a hot standby that
// stream from the safekeeper on timeline 1 follow the switch by themselves;
// IDENTIFY_SYSTEM, TIMELINE_HISTORY and START_REPLICATION … TIMELINE 1 answer
// as a walsender does; a restart keeps all of it.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatLsn, parseLsn, segmentFileName, segmentNumber, segmentOffset } from '../../src/lsn.js';
import { parseHistory } from '../../src/wal/history.js';
import { chownToPg, pgTempDir, runPgOk, startCluster } from '../helpers/pg.js';
import { tempDir } from '../daemon/helpers.js';
import { errorFields, query, RawClient } from '../pq/raw-client.js';
import { WalFeeder } from './feeder.js';
import { flushLsn, readerConn, SEG, spawnPg, startPrimary, startWalkeeper, TENANT, TIMELINE } from './helpers.js';
import { until, waitFor } from '../helpers/support.js';
import { switchWal } from '../replication/primary.js';
import type { DaemonProc } from '../daemon/helpers.js';

/** One replication command on a new connection: its data rows, and its error if any. */
async function replicationQuery(wk: DaemonProc, sql: string): Promise<{ rows: string[][]; error?: Record<string, string> }> {
  const c = await RawClient.connect(wk.pgPort);
  try {
    await c.startup({ user: 'postgres', replication: 'true', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` });
    c.write(query(sql));
    const ms = await c.readUntil('Z');
    const err = ms.find((m) => m.tag === 'E');
    const rows = ms.filter((m) => m.tag === 'D').map((m) => dataRowFields(m.body));
    return err ? { rows, error: errorFields(err.body) } : { rows };
  } finally {
    c.destroy();
  }
}

function dataRowFields(body: Buffer): string[] {
  const n = body.readInt16BE(0);
  const out: string[] = [];
  let off = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(off);
    off += 4;
    out.push(len < 0 ? '' : body.subarray(off, off + len).toString('utf8'));
    off += Math.max(len, 0);
  }
  return out;
}

const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

t.test('a real promotion: pg_receivewal and a hot standby follow the switch through the safekeeper', async (t) => {
  const p = await startPrimary(t);
  await p.pg.sql('create table t (id int primary key, tag text)');
  await p.pg.sql(`insert into t select g, 'before' from generate_series(1, 2000) g`);

  const root = pgTempDir('wk-e2e-tli-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  // The standby that will be promoted streams from the primary itself.
  const promotedDir = join(root, 'promoted');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(p.pg.port), '-U', 'postgres', '-D', promotedDir, '-X', 'stream', '-R', '-c', 'fast', '--no-sync']);
  // The hot standby streams only from the safekeeper: a backup without WAL.
  const hotDir = join(root, 'hot');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(p.pg.port), '-U', 'postgres', '-D', hotDir, '-X', 'none', '-c', 'fast', '--no-sync']);
  const promoted = await startCluster(t, { dataDir: promotedDir, conf: { hot_standby: 'on', wal_keep_size: '1GB', checkpoint_timeout: '1h' } });

  const wk = await startWalkeeper(t, tempDir(t, 'wk-e2e-tli-data-'));
  const base = { port: wk.pgPort, tenantId: TENANT, timelineId: TIMELINE, walDir: p.pg.walDir, systemId: p.systemId, segSize: SEG, pgVersion: p.pgVersion };
  const f1 = await WalFeeder.elect(base, p.firstLsn);
  await p.pg.sql(`insert into t select g, 'timeline 1' from generate_series(2001, 4000) g`);
  await f1.push(await flushLsn(p.pg));

  // Readers on timeline 1, before any switch.
  const recv = pgTempDir('wk-e2e-tli-recv-');
  t.teardown(() => rmSync(recv, { recursive: true, force: true }));
  writeFileSync(join(hotDir, 'standby.signal'), '');
  chownToPg(join(hotDir, 'standby.signal'));
  const hot = await startCluster(t, {
    dataDir: hotDir,
    conf: { primary_conninfo: readerConn(wk, 'application_name=wk_tli_hot'), hot_standby: 'on', recovery_target_timeline: 'latest', wal_retrieve_retry_interval: '200ms' },
  });
  await waitFor('the hot standby to replay timeline 1', () => hot.sql(`select count(*) from t`).then(Number), (n) => n === 4000);
  t.equal((await replicationQuery(wk, 'IDENTIFY_SYSTEM')).rows[0][1], '1', 'IDENTIFY_SYSTEM reports timeline 1 before the switch');

  // The primary stops (its last WAL reaches the standby), the standby is promoted and writes.
  const primaryEnd = await flushLsn(p.pg);
  await until('the standby to receive the primary WAL', async () => parseLsn(await promoted.sql('select pg_last_wal_receive_lsn()')) >= primaryEnd);
  await p.pg.stop();
  t.equal(await promoted.sql('select pg_promote()'), 't');
  await until('promotion', async () => (await promoted.sql('select pg_is_in_recovery()')) === 'f');
  await promoted.sql(`insert into t select g, 'timeline 2' from generate_series(4001, 6000) g`);
  const historyText = readFileSync(join(promoted.walDir, '00000002.history'), 'utf8');
  const [{ timeline: parent, switchpoint: X }] = parseHistory(historyText);
  t.equal(parent, 1);
  t.ok(X >= primaryEnd, `the switch point ${formatLsn(X)} is at or past the primary's last flush ${formatLsn(primaryEnd)}`);
  const S = segmentNumber(X, SEG);

  // pg_receivewal starts on timeline 1 now, before the safekeeper moves.
  const receiver = spawnPg(t, 'pg_receivewal', ['-d', readerConn(wk), '-D', recv, '--no-loop', '--no-sync', '-v', '-s', '1']);
  await waitFor('pg_receivewal to start on timeline 1', () => receiver.stderr(), (e) => /starting log streaming at .* \(timeline 1\)/.test(e));

  // Timeline-1 WAL up to the switch point (the stopped primary's files), then the move and timeline 2.
  await f1.push(X);
  await f1.close();
  const put = await RawClient.connect(wk.pgPort);
  t.teardown(() => put.destroy());
  await put.startup({ user: 'proposer', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` });
  put.write(query(`PUT_TIMELINE_HISTORY 2 ${literal(historyText)}`));
  t.notOk((await put.readUntil('Z')).some((m) => m.tag === 'E'), 'PUT_TIMELINE_HISTORY 2 accepted');
  const fileOf = (segno: bigint) => (segno < S ? join(p.pg.walDir, segmentFileName(1, segno, SEG)) : join(promoted.walDir, segmentFileName(2, segno, SEG)));
  const f2 = await WalFeeder.elect({ ...base, pgTimeline: 2, walFile: fileOf, uuid: new Uint8Array(16).fill(0xb2) }, X);
  t.teardown(() => f2.client.close());
  t.equal(f2.greeting.flushLsn, X, 'after the move the safekeeper holds WAL up to the switch point');
  // The switch segment is finished, so that it is complete on the safekeeper (and served by the file route).
  const fed = await switchWal(promoted);
  t.ok(segmentNumber(fed, SEG) > S, `timeline 2 fed to ${formatLsn(fed)}, past the switch segment`);
  await f2.push(fed);
  t.equal(f2.acked, fed);

  // IDENTIFY_SYSTEM, TIMELINE_HISTORY, and timeline 1 past its switch point.
  const checkServed = async (when: string): Promise<void> => {
    const id = (await replicationQuery(wk, 'IDENTIFY_SYSTEM')).rows[0];
    t.equal(id[1], '2', `IDENTIFY_SYSTEM reports timeline 2 ${when}`);
    t.equal(id[2], formatLsn(fed), `at the fed position ${when}`);
    t.same((await replicationQuery(wk, 'TIMELINE_HISTORY 2')).rows, [['00000002.history', historyText]], `TIMELINE_HISTORY 2 ${when}`);
    const past = X + BigInt(SEG);
    const refused = await replicationQuery(wk, `START_REPLICATION ${formatLsn(past - (past % BigInt(SEG)))} TIMELINE 1`);
    t.match(refused.error?.M, /on timeline 1 is not in this server's history/, `START_REPLICATION past the switch point on timeline 1 refused ${when}`);
    t.equal(refused.error?.D, `This server's history forked from timeline 1 at ${formatLsn(X)}.`);
  };
  await checkServed('after the move');

  // pg_receivewal followed the switch on its own connection.
  const recvFile = (name: string): Buffer | null => {
    for (const f of [name, name + '.partial']) if (existsSync(join(recv, f))) return readFileSync(join(recv, f));
    return null;
  };
  const tli2Matches = (): boolean => {
    for (let s = S; s <= segmentNumber(fed - 1n, SEG); s++) {
      const name = segmentFileName(2, s, SEG);
      const got = recvFile(name);
      const upto = s === segmentNumber(fed, SEG) ? segmentOffset(fed, SEG) : SEG;
      if (!got || !got.subarray(0, upto).equals(readFileSync(join(promoted.walDir, name)).subarray(0, upto))) return false;
    }
    return true;
  };
  await waitFor('pg_receivewal to receive timeline 2 up to the fed position', tli2Matches, (ok) => ok);
  t.match(receiver.stderr(), `switched to timeline 2 at ${formatLsn(X)}`);
  const names = readdirSync(recv).sort();
  t.ok(names.includes('00000002.history'), 'the history file was fetched');
  t.equal(readFileSync(join(recv, '00000002.history'), 'utf8'), historyText);
  const parentSeg = segmentFileName(1, S, SEG);
  t.ok(names.includes(parentSeg + '.partial') && !names.includes(parentSeg), `${parentSeg} (timeline 1, holding the switch) stays .partial`);
  const cut = segmentOffset(X, SEG);
  const parentBytes = readFileSync(join(recv, parentSeg + '.partial'));
  t.ok(parentBytes.subarray(0, cut).equals(readFileSync(join(promoted.walDir, segmentFileName(2, S, SEG))).subarray(0, cut)), 'up to the switch point it holds the shared WAL');
  t.ok(parentBytes.subarray(cut).every((b) => b === 0), 'and nothing past it');
  t.equal(names[names.length - 1].slice(0, 8), '00000002', 'the newest files are timeline 2');

  // The hot standby followed to timeline 2 and sees a row written after the promotion.
  await waitFor('the hot standby to replay timeline 2', () => hot.sql(`select count(*) from t where tag = 'timeline 2'`).then(Number), (n) => n === 2000);
  t.equal(await hot.sql(`select received_tli from pg_stat_wal_receiver`), '2', 'the hot standby streams timeline 2');
  t.equal(await hot.sql('select count(*) from t'), '6000', 'every row of both timelines');

  // A restart of the safekeeper keeps all of it.
  await hot.stop();
  receiver.child.kill('SIGINT');
  await receiver.done;
  await wk.stop();
  const wk2 = await startWalkeeper(t, wk.dataDir);
  const id2 = (await replicationQuery(wk2, 'IDENTIFY_SYSTEM')).rows[0];
  t.equal(id2[1], '2', 'IDENTIFY_SYSTEM reports timeline 2 after a restart');
  const loaded = wk2.logs.find((l) => l.msg === 'timeline loaded');
  t.equal(loaded?.walEnd, formatLsn(fed), 'the end of WAL found again across the switch at start-up');
  t.same((await replicationQuery(wk2, 'TIMELINE_HISTORY 2')).rows, [['00000002.history', historyText]], 'TIMELINE_HISTORY 2 after a restart');
  const stored = join(wk.dataDir, TENANT, TIMELINE);
  for (let s = S; s <= segmentNumber(fed - 1n, SEG); s++) {
    const name = segmentFileName(2, s, SEG);
    const file = existsSync(join(stored, name)) ? join(stored, name) : join(stored, name + '.partial');
    const upto = s === segmentNumber(fed, SEG) ? segmentOffset(fed, SEG) : SEG;
    t.ok(readFileSync(file).subarray(0, upto).equals(readFileSync(join(promoted.walDir, name)).subarray(0, upto)), `stored ${name} identical to the promoted server's`);
  }
  t.ok(existsSync(join(stored, parentSeg + '.partial')), "the safekeeper keeps the parent's switch segment as .partial");

  // The file route (restore-wal's source) serves the names PostgreSQL asks for after the switch.
  const file = (name: string) => fetch(`http://127.0.0.1:${wk2.httpPort}/v1/tenant/${TENANT}/timeline/${TIMELINE}/file/${name}`);
  const history = await file('00000002.history');
  t.equal(history.status, 200);
  t.equal(await history.text(), historyText, 'GET file/00000002.history');
  const switchSeg = await file(segmentFileName(2, S, SEG));
  t.equal(switchSeg.status, 200, 'GET the timeline-2 switch segment');
  t.ok(Buffer.from(await switchSeg.arrayBuffer()).equals(readFileSync(join(promoted.walDir, segmentFileName(2, S, SEG)))), "byte-identical to the promoted server's");
  t.equal((await file(parentSeg)).status, 404, "the parent's switch segment is only .partial: not served");
  const below = segmentFileName(1, S - 1n, SEG);
  t.equal((await file(below)).status, 200, `${below}: segments below the switch keep timeline 1's name`);
});
