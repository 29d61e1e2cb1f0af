// The recovery stream of a new proposer (application_name
// wal_proposer_recovery) from the real daemon: WAL pushed from a live
// primary, acknowledged but only partly committed when the old proposer
// vanishes. An ordinary reader sees WAL up to commit_lsn and keeps waiting;
// the recovering proposer is told the flush position, gets the WAL beyond
// the commit up to it, and its stream ends there on its own. The new
// proposer is then elected with that VCL and continues the WAL.
import t from 'tap';
import { formatLsn, parseLsn, type Lsn } from '../../src/lsn.js';
import { decodeServerCopyData } from '../../src/pq/streaming.js';
import { RawClient, errorFields, query, tagged } from '../pq/raw-client.js';
import { tempDir } from '../daemon/helpers.js';
import { dataRowValues } from '../replication/helpers.js';
import { randomChunks, readWal, WalFeeder } from './feeder.js';
import { electFeeder, flushLsn, SEG, startPrimary, startWalkeeper, TENANT, TIMELINE } from './helpers.js';
import { xorshift32 } from '../helpers/support.js';

const COPY_DONE = tagged('c', new Uint8Array(0));

async function replConnect(port: number, applicationName: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  const ms = await c.startup({
    user: 'postgres',
    database: 'replication',
    replication: 'true',
    application_name: applicationName,
    options: `-c ztimelineid=${TIMELINE} -c ztenantid=${TENANT}`,
  });
  const last = ms[ms.length - 1];
  if (last.tag !== 'Z') throw new Error(`start-up failed: ${JSON.stringify(errorFields(last.body))}`);
  return c;
}

async function identify(c: RawClient): Promise<{ systemId: string; timeline: string; xlogpos: Lsn }> {
  c.write(query('IDENTIFY_SYSTEM'));
  const ms = await c.readUntil('ZE');
  const err = ms.find((m) => m.tag === 'E');
  if (err) throw new Error(`IDENTIFY_SYSTEM: ${errorFields(err.body).M}`);
  const row = dataRowValues(ms.find((m) => m.tag === 'D')!.body);
  return { systemId: row[0]!, timeline: row[1]!, xlogpos: parseLsn(row[2]!) };
}

interface Streamed {
  wal: Buffer;
  messages: number;
  contiguous: boolean;
  /** The server sent CopyDone first. */
  serverEnded: boolean;
}

/**
 * START_REPLICATION at `start`; collect XLogData until the server sends
 * CopyDone, or (when `stopAt` is given) until WAL up to `stopAt` arrived and
 * `quietMs` passed without more, then end it from the client side.
 */
async function stream(c: RawClient, start: Lsn, opts: { stopAt?: Lsn; quietMs?: number } = {}): Promise<Streamed> {
  c.write(query(`START_REPLICATION ${formatLsn(start)} TIMELINE 1`));
  const w = await c.read();
  if (w?.tag !== 'W') throw new Error(`expected CopyBothResponse, got ${w?.tag} ${w && w.tag === 'E' ? errorFields(w.body).M : ''}`);
  const parts: Buffer[] = [];
  let pos = start;
  let contiguous = true;
  let messages = 0;
  let serverEnded = false;
  for (;;) {
    const reached = opts.stopAt !== undefined && pos >= opts.stopAt;
    let m;
    try {
      m = await c.read(reached ? (opts.quietMs ?? 700) : 15_000);
    } catch (err) {
      if (reached) break; // quiet after the stop point: nothing more is coming
      throw err;
    }
    if (!m) throw new Error('connection closed during the stream');
    if (m.tag === 'c') {
      serverEnded = true;
      break;
    }
    if (m.tag === 'E') throw new Error(`error during the stream: ${errorFields(m.body).M}`);
    if (m.tag !== 'd') throw new Error(`unexpected '${m.tag}' during the stream`);
    const d = decodeServerCopyData(m.body);
    if (d.kind !== 'xlogdata') continue;
    if (d.msg.dataStart !== pos) contiguous = false;
    parts.push(Buffer.from(d.msg.wal));
    pos = d.msg.dataStart + BigInt(d.msg.wal.length);
    messages++;
  }
  // Our CopyDone (an answer to the server's, or the end we ask for), then the command results.
  c.write(COPY_DONE);
  const tail = await c.readUntil('ZE');
  const tags = tail.map((m) => m.tag).join('');
  if (!/CCZ$/.test(tags)) throw new Error(`expected the end of the stream (C C Z), got ${tags}`);
  return { wal: Buffer.concat(parts), messages, contiguous, serverEnded };
}

t.test('a new proposer recovers WAL beyond commit_lsn up to the flush position, then takes over', async (t) => {
  const p = await startPrimary(t);
  await p.pg.sql('create table t (id int, pad text)');
  await p.pg.sql(`insert into t select g, repeat(md5(g::text), 3) from generate_series(1, 8000) g`);

  const wk = await startWalkeeper(t, tempDir(t, 'wk-e2e-recovery-'));
  const old = await electFeeder(t, p, wk);
  const chunks = randomChunks(xorshift32(99));
  const commit = await flushLsn(p.pg);
  await old.push(commit, { chunks });
  // More WAL, acknowledged by the safekeeper but never committed: the proposer dies first.
  await p.pg.sql(`insert into t select g, repeat(md5(g::text), 3) from generate_series(8001, 16000) g`);
  await p.pg.sql('select pg_switch_wal()');
  await p.pg.sql(`insert into t select g, 'tail' from generate_series(16001, 17000) g`);
  const flush = await flushLsn(p.pg);
  await old.push(flush, { chunks, maxCommit: commit });
  t.equal(old.acked, flush, `acknowledged up to ${formatLsn(flush)}`);
  t.equal(old.commitSent, commit, `committed only up to ${formatLsn(commit)}`);
  old.client.close();

  const from = p.firstLsn;

  // An ordinary reader: told commit_lsn, streamed up to it, then nothing more.
  const reader = await replConnect(wk.pgPort, 'e2e-reader');
  const ri = await identify(reader);
  t.equal(ri.systemId, String(p.systemId));
  t.equal(ri.xlogpos, commit, 'IDENTIFY_SYSTEM tells an ordinary reader the commit position');
  const rs = await stream(reader, from, { stopAt: commit });
  t.notOk(rs.serverEnded, 'its stream does not end by itself');
  t.ok(rs.contiguous);
  t.equal(rs.wal.length, Number(commit - from), 'it got WAL up to commit_lsn and no further');
  t.ok(rs.wal.equals(readWal(p.pg.walDir, from, commit, SEG)), 'identical to the primary');
  reader.destroy();

  // The recovering proposer: told the flush position, streamed up to it, then the server ends the stream.
  const rec = await replConnect(wk.pgPort, 'wal_proposer_recovery');
  const ci = await identify(rec);
  t.equal(ci.xlogpos, flush, 'IDENTIFY_SYSTEM tells the recovering proposer the flush position');
  const cs = await stream(rec, from);
  t.ok(cs.serverEnded, 'the server ended the stream (CopyDone) at the end of WAL');
  t.ok(cs.contiguous, `${cs.messages} contiguous XLogData messages`);
  t.equal(cs.wal.length, Number(flush - from), `WAL from ${formatLsn(from)} up to the flush position, ${Number(flush - commit)} bytes beyond commit_lsn`);
  t.ok(cs.wal.equals(readWal(p.pg.walDir, from, flush, SEG)), 'byte-identical to the primary, beyond the commit position too');
  // The connection goes on after the stream.
  t.equal((await identify(rec)).xlogpos, flush, 'the connection is usable after the stream ended');
  rec.destroy();

  // The new proposer: elected above the old term; its VCL is the safekeeper's end of WAL.
  const fresh = await WalFeeder.elect(
    { port: wk.pgPort, tenantId: TENANT, timelineId: TIMELINE, walDir: p.pg.walDir, systemId: p.systemId, segSize: SEG, pgVersion: p.pgVersion, uuid: new Uint8Array(16).fill(0xbb) },
    p.firstLsn,
  );
  t.teardown(() => fresh.client.close());
  t.equal(fresh.nodeId.term, old.nodeId.term + 1n, 'a higher term');
  t.ok(fresh.next > commit && fresh.next <= flush, `VCL ${formatLsn(fresh.next)} is the recovered end of WAL (a record end at or before ${formatLsn(flush)})`);
  await p.pg.sql(`insert into t select g, 'new leader' from generate_series(17001, 18000) g`);
  const end = await flushLsn(p.pg);
  const r = await fresh.push(end, { chunks });
  t.equal(r.epoch, fresh.nodeId.term, 'the safekeeper switched to the new epoch');
  t.equal(fresh.commitSent, end, 'and the new proposer committed everything');

  const after = await replConnect(wk.pgPort, 'e2e-reader-2');
  t.equal((await identify(after)).xlogpos, end, 'ordinary readers now see the whole WAL');
  const as = await stream(after, from, { stopAt: end });
  t.ok(as.wal.equals(readWal(p.pg.walDir, from, end, SEG)), 'identical to the primary from the first segment to the new end');
  after.destroy();
});
