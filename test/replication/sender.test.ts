// START_REPLICATION end to end against an in-memory source and connection:
// what is streamed, when, and how each kind of stream end looks on the wire.
import t, { type Test } from 'tap';
import { formatLsn, parseLsn, type Lsn } from '../../src/lsn.js';
import { handleReplicationQuery } from '../../src/replication/handler.js';
import { RECOVERY_APPLICATION_NAME } from '../../src/pq/streaming.js';
import { decodeServerCopyData, encodeLegacyHsFeedback, encodePgHsFeedback, encodeStatusUpdate, type XLogData } from '../../src/pq/streaming.js';
import { MAX_SEND_SIZE } from '../../src/replication/sender.js';
import { U64_MAX } from '../../src/protocol/layout.js';
import { cd, copyDoneMsg, dataRowValues, errorFields, FakeConn, fx, MemWalSource, terminateMsg, walBytes, type ServerMessage } from './helpers.js';

const MB = 1n << 20n;

function xlogData(msgs: ServerMessage[]): XLogData[] {
  const out: XLogData[] = [];
  for (const m of msgs) {
    if (m.tag !== 'd') continue;
    const d = decodeServerCopyData(m.body);
    if (d.kind === 'xlogdata') out.push(d.msg);
  }
  return out;
}

function keepalives(msgs: ServerMessage[]): { walEnd: Lsn; replyRequested: boolean; size: number }[] {
  return msgs
    .filter((m) => m.tag === 'd' && m.body[0] === 0x6b)
    .map((m) => {
      const d = decodeServerCopyData(m.body);
      if (d.kind !== 'keepalive') throw new Error('not a keepalive');
      return { walEnd: d.msg.walEnd, replyRequested: d.msg.replyRequested, size: m.body.length };
    });
}

/** End of the WAL streamed so far, checking that it starts at `start`, has no gaps and holds the source's bytes. */
function checkStream(t: Test, msgs: ServerMessage[], start: Lsn): Lsn {
  let pos = start;
  for (const x of xlogData(msgs)) {
    if (x.dataStart !== pos) {
      t.fail(`XLogData at ${formatLsn(x.dataStart)}, expected ${formatLsn(pos)}`);
      return pos;
    }
    if (!walBytes(pos, x.wal.length).equals(Buffer.from(x.wal))) {
      t.fail(`wrong WAL bytes at ${formatLsn(pos)}`);
      return pos;
    }
    pos += BigInt(x.wal.length);
  }
  return pos;
}

const tags = (msgs: ServerMessage[]): string => msgs.map((m) => (m.tag === 'd' ? String.fromCharCode(m.body[0]) : m.tag)).join(' ');
const streamedTo = (conn: FakeConn, start: Lsn) => (msgs: ServerMessage[]) => {
  let pos = start;
  for (const x of xlogData(msgs)) pos = x.dataStart + BigInt(x.wal.length);
  return pos;
};
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

t.test('streams from exactly the start, in ≤1 MiB messages cut at pages, up to commit', async (t) => {
  const start = parseLsn('0/1000123');
  const commit = parseLsn('0/1300010');
  const source = new MemWalSource({ commit, flush: commit + 5000n });
  const conn = new FakeConn();
  const done = handleReplicationQuery(`START_REPLICATION ${formatLsn(start)} TIMELINE 1`, conn, source);
  const msgs = await conn.until((m) => streamedTo(conn, start)(m) === commit);
  t.equal(msgs[0].tag, 'W');
  t.same(msgs[0].raw, fx('57 00000007 00 0000'));
  const xs = xlogData(msgs);
  t.equal(xs[0].dataStart, start, 'first XLogData at the requested position');
  t.equal(checkStream(t, msgs, start), commit);
  for (const x of xs) t.ok(x.wal.length <= MAX_SEND_SIZE);
  // All but the last end on a page boundary; the first is cut short of MAX_SEND_SIZE at one.
  for (const x of xs.slice(0, -1)) t.equal((x.dataStart + BigInt(x.wal.length)) % 8192n, 0n);
  t.equal(xs[0].wal.length, Number(((start + BigInt(MAX_SEND_SIZE)) / 8192n) * 8192n - start));
  t.equal(xs[1].wal.length, MAX_SEND_SIZE);
  for (const x of xs) t.equal(x.walEnd, commit, 'walEnd = what may be sent');
  // The reader is registered while streaming.
  const [r] = source.readers.list();
  t.equal(r.applicationName, 'test');
  t.equal(r.sentLsn, commit);
  conn.push(copyDoneMsg);
  t.equal(await done, 'ready');
  t.equal(source.readers.size, 0, 'detached at the end');
});

t.test('waits without polling and sends new WAL within milliseconds of the commit moving', async (t) => {
  const start = parseLsn('0/1000000');
  const source = new MemWalSource({ commit: start + 100n, flush: start + 10n * MB });
  const conn = new FakeConn();
  const done = handleReplicationQuery(`START_REPLICATION ${formatLsn(start)} TIMELINE 1`, conn, source);
  await conn.until((m) => streamedTo(conn, start)(m) === start + 100n);
  await tick(30);
  const reads = source.reads.length;
  const sends = conn.sendCalls;
  t.equal(source.commit.waiting, 1, 'one waiter on the commit position');
  await tick(100);
  t.equal(source.reads.length, reads, 'no reads while idle');
  t.equal(conn.sendCalls, sends, 'nothing sent while idle');
  for (const step of [300n, 8192n * 3n, 2n * MB]) {
    const before = source.commitLsn();
    const target = before + step;
    const t0 = process.hrtime.bigint();
    source.advance(target, source.flushLsn());
    await conn.nextSend();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const first = xlogData(conn.messages()).at(-1)!;
    t.equal(first.dataStart, before, 'the new WAL comes next');
    t.ok(ms < 50, `first new XLogData ${ms.toFixed(2)} ms after the commit moved`);
    await conn.until((m) => streamedTo(conn, start)(m) === target);
  }
  t.equal(checkStream(t, conn.messages(), start), source.commitLsn());
  conn.push(copyDoneMsg);
  t.equal(await done, 'ready');
  t.equal(source.commit.waiting, 0, 'the wait was withdrawn');
});

t.test('a message may cross a segment boundary; reads stay within one segment', async (t) => {
  const start = parseLsn('0/10F8000');
  const commit = parseLsn('0/1108000');
  const source = new MemWalSource({ commit });
  const conn = new FakeConn();
  const done = handleReplicationQuery(`START_REPLICATION ${formatLsn(start)}`, conn, source);
  await conn.until((m) => streamedTo(conn, start)(m) === commit);
  const xs = xlogData(conn.messages());
  t.equal(xs.length, 1, 'one message across the boundary');
  t.equal(checkStream(t, conn.messages(), start), commit);
  t.same(
    source.reads.map((r) => [formatLsn(r.lsn), r.n]),
    [
      ['0/10F8000', 0x8000],
      ['0/1100000', 0x8000],
    ],
  );
  conn.push(copyDoneMsg);
  await done;
});

t.test('client CopyDone: CopyDone, START_STREAMING, START_REPLICATION, ReadyForQuery', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/1000100') });
  const conn = new FakeConn();
  const done = handleReplicationQuery('START_REPLICATION 0/1000000 TIMELINE 1', conn, source);
  await conn.until((m) => xlogData(m).length === 1);
  conn.push(cd(encodeStatusUpdate({ writeLsn: 0x1000100n, flushLsn: 0n, applyLsn: 0n, clientTime: 1n, replyRequested: false })));
  conn.push(copyDoneMsg);
  const query = { tag: 0x51, body: Buffer.from('IDENTIFY_SYSTEM\0') };
  conn.push(query);
  t.equal(await done, 'ready');
  const msgs = conn.messages();
  t.equal(tags(msgs), 'W w c C C Z');
  t.same(
    Buffer.concat(msgs.slice(2).map((m) => m.raw)),
    fx('63 00000004 43 00000014 "START_STREAMING\\0" 43 00000016 "START_REPLICATION\\0" 5a 00000005 49'),
  );
  t.same(conn.unread, [query], 'the next query is left for the daemon');
});

t.test("answers replyRequested with an 18-byte 'k'; idle keepalives; timeout", async (t) => {
  const start = parseLsn('0/1000000');
  const source = new MemWalSource({ commit: start + 4096n });
  const conn = new FakeConn();
  const done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, source, { keepaliveIntervalMs: 60_000 });
  await conn.until((m) => xlogData(m).length === 1);
  conn.push(cd(encodeStatusUpdate({ writeLsn: start, flushLsn: 0n, applyLsn: 0n, clientTime: 1n, replyRequested: true })));
  const msgs = await conn.until((m) => keepalives(m).length === 1);
  t.same(keepalives(msgs), [{ walEnd: start + 4096n, replyRequested: false, size: 18 }], 'walEnd = sent position');
  const [r] = source.readers.list();
  t.same(r.status, { writeLsn: start, flushLsn: 0n, applyLsn: 0n, clientTime: 1n });
  t.equal(r.replicatedLsn, start, 'flush 0 = not reported: write counts');
  conn.push(cd(encodeStatusUpdate({ writeLsn: start + 10n, flushLsn: start + 5n, applyLsn: 0n, clientTime: 2n, replyRequested: false })));
  await tick(20);
  t.equal(source.readers.list()[0].replicatedLsn, start + 5n, 'flush counts when reported');
  conn.push(copyDoneMsg);
  await done;

  t.test('idle keepalives, asking for a reply once half the timeout has passed', async (t) => {
    const conn = new FakeConn();
    // Idle keepalives every 100 ms, the ping at 1 s: several come first even on a slowed machine.
    const done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, source, { keepaliveIntervalMs: 100, timeoutMs: 2000 });
    const msgs = await conn.until((m) => keepalives(m).some((k) => k.replyRequested));
    const ks = keepalives(msgs);
    t.ok(ks.length >= 2);
    t.equal(ks[0].replyRequested, false);
    t.ok(ks.every((k) => k.size === 18 && k.walEnd === start + 4096n));
    conn.push(copyDoneMsg);
    t.equal(await done, 'ready');
  });

  t.test('a reply is requested at half the timeout even while WAL flows', async (t) => {
    const busy = new MemWalSource({ commit: start });
    const conn = new FakeConn();
    // The ping is due at 1 s; WAL is fed every 5 ms, so even a machine
    // slowed tenfold sends many XLogData messages before it.
    const done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, busy, { keepaliveIntervalMs: 10_000, timeoutMs: 2000 });
    const feeder = setInterval(() => busy.advance(busy.commitLsn() + 100n), 5);
    const msgs = await conn.until((m) => keepalives(m).some((k) => k.replyRequested));
    clearInterval(feeder);
    t.equal(keepalives(msgs).length, 1, 'one ping, no idle keepalives while busy');
    t.ok(xlogData(msgs).length > 5, 'WAL kept flowing');
    conn.push(copyDoneMsg);
    t.equal(await done, 'ready');
  });

  t.test('no client message for the timeout: the stream ends', async (t) => {
    const conn = new FakeConn();
    const t0 = Date.now();
    t.equal(await handleReplicationQuery('START_REPLICATION 0/1000000', conn, source, { keepaliveIntervalMs: 1000, timeoutMs: 150 }), 'close');
    t.ok(Date.now() - t0 >= 140);
    t.equal(source.readers.size, 0);
  });
});

t.test('a start ahead of flush: CopyBothResponse, then the error, then ReadyForQuery', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/10000100') });
  const conn = new FakeConn();
  t.equal(await handleReplicationQuery('START_REPLICATION 0/20000000 TIMELINE 1', conn, source), 'ready');
  const msgs = conn.messages();
  t.equal(tags(msgs), 'W E Z');
  t.same(errorFields(msgs[1].body), {
    S: 'ERROR',
    V: 'ERROR',
    C: 'XX000',
    M: 'requested starting point 0/20000000 is ahead of the WAL flush position of this server 0/10000100',
  });
  // Between commit and flush is fine: it waits for the commit.
  const s2 = new MemWalSource({ commit: parseLsn('0/1000000'), flush: parseLsn('0/2000000') });
  const c2 = new FakeConn();
  const done = handleReplicationQuery('START_REPLICATION 0/1800000', c2, s2);
  await tick(30);
  t.equal(tags(c2.messages()), 'W');
  s2.advance(parseLsn('0/1800010'), parseLsn('0/2000000'));
  await c2.until((m) => xlogData(m).length === 1);
  c2.push(copyDoneMsg);
  await done;
});

t.test('a removed segment: 58P01 after CopyBothResponse', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/3000000'), removedBelow: parseLsn('0/2000000') });
  const conn = new FakeConn();
  t.equal(await handleReplicationQuery('START_REPLICATION 0/0 TIMELINE 1', conn, source), 'ready');
  const msgs = conn.messages();
  t.equal(tags(msgs), 'W E Z');
  t.same(errorFields(msgs[1].body), {
    S: 'ERROR',
    V: 'ERROR',
    C: '58P01',
    M: 'requested WAL segment 000000010000000000000000 has already been removed',
  });
  t.equal(source.readers.size, 0);
  // Removed while streaming: the WAL before it arrives, then the error.
  source.removedBelow = 0n;
  const conn2 = new FakeConn();
  const done = handleReplicationQuery('START_REPLICATION 0/1000000', conn2, source);
  await conn2.until((m) => xlogData(m).length > 0);
  source.removedBelow = parseLsn('0/3000000');
  t.equal(await done, 'ready');
  const m2 = conn2.messages();
  t.match(tags(m2), /^W( w)+ E Z$/);
  t.equal(errorFields(m2[m2.length - 2].body).C, '58P01');
});

t.test('server shutdown: CommandComplete "COPY 0" and close, no CopyDone or ReadyForQuery', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/1000100') });
  const conn = new FakeConn();
  const shutdown = new AbortController();
  const done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, source, { shutdown: shutdown.signal });
  await conn.until((m) => xlogData(m).length === 1);
  shutdown.abort();
  t.equal(await done, 'close');
  const msgs = conn.messages();
  t.equal(tags(msgs), 'W w C');
  t.same(msgs[2].raw, Buffer.from('430000000b434f5059203000', 'hex'));
  t.same(conn.unread, []);
});

t.test('client Terminate, EOF, and messages that have no place in COPY', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/1000100') });
  let conn = new FakeConn();
  let done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, source);
  await conn.until((m) => xlogData(m).length === 1);
  conn.push(terminateMsg);
  t.equal(await done, 'close');
  t.equal(tags(conn.messages()), 'W w');

  conn = new FakeConn();
  done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, source);
  conn.end();
  t.equal(await done, 'close');

  conn = new FakeConn();
  done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, source);
  conn.push({ tag: 0x51, body: Buffer.from('SELECT 1\0') });
  t.equal(await done, 'close');
  let msgs = conn.messages();
  t.equal(msgs[msgs.length - 1].tag, 'E');
  t.same(errorFields(msgs[msgs.length - 1].body), { S: 'FATAL', V: 'FATAL', C: '08P01', M: 'unexpected message type "Q"' });

  conn = new FakeConn();
  done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, source);
  conn.push(cd(Buffer.from('z123')));
  t.equal(await done, 'close');
  msgs = conn.messages();
  t.same(errorFields(msgs[msgs.length - 1].body).M, 'unexpected message type "z"');
  t.equal(source.readers.size, 0);
});

t.test('hot standby feedback is folded into the timeline: min xmin over readers, newest ts', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/1000100') });
  t.same(source.readers.hsFeedback(), { ts: 0n, xmin: U64_MAX, catalogXmin: U64_MAX }, 'none: u64::MAX');
  const a = new FakeConn({ application_name: 'standby_a' });
  const b = new FakeConn({ application_name: 'standby_b' });
  const da = handleReplicationQuery('START_REPLICATION 0/1000000', a, source);
  const db = handleReplicationQuery('START_REPLICATION 0/1000000', b, source);
  await a.until((m) => xlogData(m).length === 1);
  await b.until((m) => xlogData(m).length === 1);
  a.push(cd(encodePgHsFeedback({ clientTime: 100n, xmin: 800, xminEpoch: 1, catalogXmin: 0, catalogXminEpoch: 0 })));
  b.push(cd(encodeLegacyHsFeedback({ ts: 50n, xmin: (1n << 32n) | 900n, catalogXmin: 700n })));
  await tick(20);
  t.same(source.readers.hsFeedback(), { ts: 100n, xmin: (1n << 32n) | 800n, catalogXmin: 700n });
  // Clearing (xmin 0) and a later report replace the reader's previous one.
  a.push(cd(encodePgHsFeedback({ clientTime: 200n, xmin: 0, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 })));
  await tick(20);
  t.same(source.readers.hsFeedback(), { ts: 200n, xmin: (1n << 32n) | 900n, catalogXmin: 700n });
  b.push(copyDoneMsg);
  await db;
  t.same(source.readers.hsFeedback(), { ts: 200n, xmin: U64_MAX, catalogXmin: U64_MAX }, 'a departed reader no longer holds xmin back');
  a.push(copyDoneMsg);
  await da;
  t.same(source.readers.hsFeedback(), { ts: 0n, xmin: U64_MAX, catalogXmin: U64_MAX });
});

t.test('a recovering proposer is streamed to the end of WAL (flush), then the stream ends', async (t) => {
  const commit = parseLsn('0/1000100');
  const flush = parseLsn('0/1023456');
  const source = new MemWalSource({ commit, flush });
  const params = { application_name: RECOVERY_APPLICATION_NAME };
  const id = new FakeConn(params);
  await handleReplicationQuery('IDENTIFY_SYSTEM', id, source);
  t.equal(dataRowValues(id.messages()[1].body)[2], '0/1023456', 'IDENTIFY_SYSTEM xlogpos = flush for recovery');
  const plain = new FakeConn();
  await handleReplicationQuery('IDENTIFY_SYSTEM', plain, source);
  t.equal(dataRowValues(plain.messages()[1].body)[2], '0/1000100', 'commit for ordinary readers');

  const conn = new FakeConn(params);
  const done = handleReplicationQuery('START_REPLICATION PHYSICAL 0/1000000', conn, source);
  const msgs = await conn.until((m) => m.some((x) => x.tag === 'c'));
  t.equal(checkStream(t, msgs, 0x1000000n), flush, 'past commit, up to flush');
  t.equal(msgs[msgs.length - 1].tag, 'c', 'server CopyDone first');
  source.advance(commit, flush + 100n);
  conn.push(cd(encodeStatusUpdate({ writeLsn: flush, flushLsn: flush, applyLsn: 0n, clientTime: 1n, replyRequested: true })));
  conn.push(copyDoneMsg);
  t.equal(await done, 'ready');
  t.equal(tags(conn.messages()).replace(/( w)+/, ' w…'), 'W w… c C C Z', 'no keepalive after our CopyDone, no more WAL');
});

t.test('a stop position ends the stream there (walkeeper extension)', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/1000000') });
  const conn = new FakeConn();
  const done = handleReplicationQuery('START_REPLICATION 0/1000000 0/1050000 TIMELINE 1', conn, source);
  await tick(20);
  source.advance(parseLsn('0/1030000'));
  await conn.until((m) => streamedTo(conn, 0x1000000n)(m) === 0x1030000n);
  source.advance(parseLsn('0/1100000'));
  const msgs = await conn.until((m) => m.some((x) => x.tag === 'c'));
  t.equal(checkStream(t, msgs, 0x1000000n), parseLsn('0/1050000'));
  conn.push(copyDoneMsg);
  t.equal(await done, 'ready');
  t.equal(tags(conn.messages()).replace(/( w)+/, ' w…'), 'W w… c C C Z');
});

t.test('a past timeline: streamed to the fork, then the next timeline is reported', async (t) => {
  const history = { 2: '1\t0/1080000\tno recovery target specified\n' };
  const source = new MemWalSource({ commit: parseLsn('0/1100000'), pgTimeline: 2, history });
  const conn = new FakeConn();
  const done = handleReplicationQuery('START_REPLICATION 0/1000000 TIMELINE 1', conn, source);
  const msgs = await conn.until((m) => m.some((x) => x.tag === 'c'));
  t.equal(checkStream(t, msgs, 0x1000000n), parseLsn('0/1080000'), 'exactly up to the switch point');
  t.equal(xlogData(msgs)[0].walEnd, parseLsn('0/1080000'));
  conn.push(cd(encodeStatusUpdate({ writeLsn: 0x1080000n, flushLsn: 0n, applyLsn: 0n, clientTime: 1n, replyRequested: false })));
  conn.push(copyDoneMsg);
  t.equal(await done, 'ready');
  const all = conn.messages();
  t.equal(tags(all).replace(/( w)+/, ' w…'), 'W w… c T D C C Z');
  t.same(dataRowValues(all[all.length - 4].body), ['2', '0/1080000']);

  // At or past the fork: no COPY at all.
  const c2 = new FakeConn();
  t.equal(await handleReplicationQuery('START_REPLICATION 0/1080000 TIMELINE 1', c2, source), 'ready');
  t.equal(tags(c2.messages()), 'T D C C Z');

  const c3 = new FakeConn();
  await handleReplicationQuery('START_REPLICATION 0/1090000 TIMELINE 1', c3, source);
  t.same(errorFields(c3.messages()[0].body), {
    S: 'ERROR',
    V: 'ERROR',
    C: 'XX000',
    M: "requested starting point 0/1090000 on timeline 1 is not in this server's history",
    D: "This server's history forked from timeline 1 at 0/1080000.",
  });
  for (const tl of [3, 5]) {
    const c = new FakeConn();
    await handleReplicationQuery(`START_REPLICATION 0/1000000 TIMELINE ${tl}`, c, source);
    t.equal(tags(c.messages()), 'E Z');
    t.equal(errorFields(c.messages()[0].body).M, `requested timeline ${tl} is not in this server's history`);
  }
  // Without a history, an older timeline cannot be placed.
  const noHistory = new MemWalSource({ commit: parseLsn('0/1100000'), pgTimeline: 2 });
  const c4 = new FakeConn();
  await handleReplicationQuery('START_REPLICATION 0/1000000 TIMELINE 1', c4, noHistory);
  t.equal(errorFields(c4.messages()[0].body).M, "requested timeline 1 is not in this server's history");
});

t.test('a slow reader never holds up the others or the append path', async (t) => {
  const start = parseLsn('0/1000000');
  const source = new MemWalSource({ commit: start + 2n * MB });
  const slow = new FakeConn({ application_name: 'slow' }, 64 * 1024);
  const fast = Array.from({ length: 8 }, (_, i) => new FakeConn({ application_name: `fast${i}` }));
  const slowDone = handleReplicationQuery('START_REPLICATION 0/1000000', slow, source);
  const fastDone = fast.map((c) => handleReplicationQuery('START_REPLICATION 0/1000000', c, source));
  await Promise.all(fast.map((c) => c.until((m) => streamedTo(c, start)(m) === start + 2n * MB)));
  for (const c of fast) t.equal(checkStream(t, c.messages(), start), start + 2n * MB);
  t.equal(xlogData(slow.messages()).length, 1, 'the slow reader stopped after its buffer filled');
  t.ok(slow.drainCalls >= 1, 'and waits for the socket to drain');
  // The append path goes on regardless.
  source.advance(start + 3n * MB);
  await Promise.all(fast.map((c) => c.until((m) => streamedTo(c, start)(m) === start + 3n * MB)));
  t.equal(xlogData(slow.messages()).length, 1);
  // Once its peer reads, the slow one catches up at its own pace.
  while (streamedTo(slow, start)(slow.messages()) < start + 3n * MB) {
    slow.consume();
    await slow.nextSend();
  }
  t.equal(checkStream(t, slow.messages(), start), start + 3n * MB);
  t.equal(source.readers.size, 9);
  for (const c of [slow, ...fast]) c.push(copyDoneMsg);
  slow.consume();
  t.same(await Promise.all([slowDone, ...fastDone]), Array(9).fill('ready'));
});

t.test('client CopyDone while the sender waits for the socket to drain', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/1100000') });
  const conn = new FakeConn({}, 1024);
  const done = handleReplicationQuery('START_REPLICATION 0/1000000', conn, source);
  await conn.until((m) => xlogData(m).length === 1);
  conn.push(copyDoneMsg);
  t.equal(await done, 'ready');
  t.equal(tags(conn.messages()), 'W w c C C Z');
});

t.test('other commands', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/1000000') });
  const run = async (sql: string): Promise<ServerMessage[]> => {
    const conn = new FakeConn();
    t.equal(await handleReplicationQuery(sql, conn, source), 'ready', sql);
    return conn.messages();
  };
  let m = await run('CREATE_REPLICATION_SLOT "myslot" PHYSICAL');
  t.equal(tags(m), 'T D C Z');
  t.same(dataRowValues(m[1].body), ['myslot', '0/0', null, null]);
  m = await run('CREATE_REPLICATION_SLOT "pg_walreceiver_0" TEMPORARY PHYSICAL (RESERVE_WAL)');
  t.same(dataRowValues(m[1].body), ['pg_walreceiver_0', '0/0', null, null]);
  m = await run("CREATE_REPLICATION_SLOT s PHYSICAL (reserve_wal 'maybe')");
  t.same(errorFields(m[0].body).M, 'reserve_wal requires a Boolean value');
  m = await run('CREATE_REPLICATION_SLOT s PHYSICAL (two_phase)');
  t.same(errorFields(m[0].body).M, 'unrecognized option: two_phase');
  m = await run('CREATE_REPLICATION_SLOT s PHYSICAL (reserve_wal, reserve_wal)');
  t.same(errorFields(m[0].body).M, 'conflicting or redundant options');
  for (const sql of ['CREATE_REPLICATION_SLOT s LOGICAL pgoutput', 'START_REPLICATION SLOT s LOGICAL 0/0']) {
    m = await run(sql);
    t.same(errorFields(m[0].body), { S: 'ERROR', V: 'ERROR', C: '0A000', M: 'logical decoding requires a database connection' });
  }
  m = await run('BASE_BACKUP');
  t.equal(errorFields(m[0].body).C, '0A000');
  m = await run('SHOW work_mem');
  t.same(errorFields(m[0].body), { S: 'ERROR', V: 'ERROR', C: '42704', M: 'unrecognized configuration parameter "work_mem"' });
  m = await run('SHOW server_version');
  t.same(dataRowValues(m[1].body), ['15.18']);
  m = await run('SHOW "WAL_SEGMENT_SIZE"');
  t.same(dataRowValues(m[1].body), ['1MB']);
  t.equal(m[0].body.subarray(2, 18).toString(), 'wal_segment_size', 'column named by the canonical name');
  m = await run('TIMELINE_HISTORY 3');
  t.equal(tags(m), 'T E Z', 'the row description comes before the error');
  t.same(errorFields(m[1].body), { S: 'ERROR', V: 'ERROR', C: '58P01', M: 'could not open file "pg_wal/00000003.history": No such file or directory' });
  m = await run('select 1');
  t.equal(tags(m), 'E Z');
  t.same(errorFields(m[0].body), { S: 'ERROR', V: 'ERROR', C: '0A000', M: 'cannot execute SQL commands in WAL sender for physical replication' });
  m = await run('START_REPLICATION 0/0 TIMELINE 0');
  t.same(errorFields(m[0].body), { S: 'ERROR', V: 'ERROR', C: '42601', M: 'invalid timeline 0' });
  // start = stop: nothing to send; the server ends COPY at once, with any slot name.
  const conn = new FakeConn();
  const done = handleReplicationQuery('START_REPLICATION SLOT "anything" 0/1000000 0/1000000', conn, source);
  await conn.until((x) => x.some((y) => y.tag === 'c'));
  conn.push(copyDoneMsg);
  t.equal(await done, 'ready');
  t.equal(tags(conn.messages()), 'W c C C Z');
});
