// Bad input of every kind gets an ErrorResponse with a SQLSTATE and ends the
// session; the daemon keeps serving other connections, no file appears
// outside the timeline's directory, and acknowledged WAL stays intact.
import t, { type Test } from 'tap';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { encodeRequestVote, encodeSafeKeeperRequest, encodeServerInfo } from '../../src/protocol/messages.js';
import type { NodeId } from '../../src/protocol/types.js';
import { copyDataMsg, query, RawClient, startupPacket, tagged } from '../pq/raw-client.js';
import {
  commonPrefix,
  elect,
  PushClient,
  PushError,
  realWal,
  serverInfo,
  startDaemon,
  storedWal,
  tempDir,
  TENANT,
  TIMELINE,
  type RealWal,
} from './helpers.js';
import { xorshift32 } from '../helpers/support.js';

function listTree(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    out.push(relative(base, p));
    if (statSync(p).isDirectory()) out.push(...listTree(p, base));
  }
  return out.sort();
}

const OPTIONS = `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}`;

t.test('bad input is answered, the session ends, the daemon and the WAL are fine', async (t) => {
  const wal = await realWal(t);
  const root = tempDir(t);
  const dataDir = join(root, 'data');
  mkdirSync(dataDir);
  const d = await startDaemon(t, { dataDir });

  // Some acknowledged WAL first.
  const c0 = await PushClient.connect(d.pgPort);
  const e0 = await elect(c0, wal);
  const ackedEnd = wal.startLsn + BigInt(2 * wal.segSize + 4321);
  let pos = wal.startLsn;
  while (pos < ackedEnd) {
    const end = pos + 100_000n > ackedEnd ? ackedEnd : pos + 100_000n;
    c0.append({ senderId: e0.nodeId, beginLsn: pos, endLsn: end, restartLsn: 0n, commitLsn: 0n, wal: wal.bytes.subarray(Number(pos - wal.startLsn), Number(end - wal.startLsn)) });
    pos = end;
  }
  let last = 0n;
  while (last < ackedEnd) last = (await c0.response()).flushLsn;
  c0.close();
  const treeBefore = listTree(root).filter((p) => !p.startsWith(join('data', TENANT, TIMELINE) + '/'));

  async function stillServing(t: Test, what: string): Promise<void> {
    const c = await RawClient.connect(d.pgPort);
    await c.startup({ user: 'u', options: OPTIONS });
    c.write(query('NOT_A_COMMAND'));
    const ms = await c.readUntil('Z');
    t.equal(ms[0].tag, 'E', `${what}: daemon still answers`);
    c.destroy();
    t.equal(d.proc.exitCode, null, `${what}: daemon alive`);
    const stored = storedWal(dataDir, wal.startLsn, Number(ackedEnd - wal.startLsn), wal.segSize);
    t.equal(commonPrefix(stored, wal.bytes), Number(ackedEnd - wal.startLsn), `${what}: acknowledged WAL intact`);
    const tree = listTree(root).filter((p) => !p.startsWith(join('data', TENANT, TIMELINE) + '/'));
    t.same(tree, treeBefore, `${what}: no file outside the timeline directory`);
  }

  /** A pushing session up to the point where `bad` is sent; expects an error with `code` and a closed connection. */
  async function expectSessionError(t: Test, what: string, code: string, bad: (c: PushClient, nodeId: NodeId, wal: RealWal) => Promise<void> | void): Promise<void> {
    const c = await PushClient.connect(d.pgPort);
    let err: unknown;
    try {
      await bad(c, { term: 0n, uuid: new Uint8Array(16) }, wal);
      for (;;) await c.next(10_000);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof PushError, `${what}: ErrorResponse (${(err as Error)?.message})`);
    if (err instanceof PushError) {
      t.equal(err.code, code, `${what}: SQLSTATE ${code}`);
      t.ok(err.fields.S && err.fields.V && err.fields.M, `${what}: S, V, M present`);
    }
    await c.raw.expectClosed();
    await stillServing(t, what);
  }

  await t.test('malformed protocol messages', async (t) => {
    await expectSessionError(t, 'truncated ServerInfo', '08P01', async (c) => {
      await c.startWalPush();
      c.sendRaw(encodeServerInfo(serverInfo(wal)).subarray(0, 50));
    });
    await expectSessionError(t, 'ServerInfo with trailing bytes', '08P01', async (c) => {
      await c.startWalPush();
      c.sendRaw(Buffer.concat([encodeServerInfo(serverInfo(wal)), Buffer.from([1])]));
    });
    await expectSessionError(t, 'truncated RequestVote', '08P01', async (c) => {
      await c.startWalPush();
      await c.greet(serverInfo(wal));
      c.sendRaw(encodeRequestVote({ nodeId: { term: 99n, uuid: new Uint8Array(16) }, vcl: 0n, epoch: 1n }).subarray(0, 20));
    });
    await expectSessionError(t, 'truncated SafeKeeperRequest header', '08P01', async (c) => {
      const { nodeId } = await elect(c, wal);
      c.sendRaw(encodeSafeKeeperRequest({ senderId: nodeId, beginLsn: ackedEnd, endLsn: ackedEnd, restartLsn: 0n, commitLsn: 0n, wal: new Uint8Array(0) }).subarray(0, 30));
    });
    const header = (nodeId: NodeId, begin: bigint, end: bigint): Buffer => {
      const h = Buffer.alloc(56);
      h.writeBigUInt64LE(nodeId.term, 0);
      Buffer.from(nodeId.uuid).copy(h, 8);
      h.writeBigUInt64LE(begin, 24);
      h.writeBigUInt64LE(end, 32);
      return h;
    };
    await expectSessionError(t, 'WAL byte count differs from end_lsn - begin_lsn', '08P01', async (c) => {
      const { nodeId } = await elect(c, wal);
      c.sendRaw(Buffer.concat([header(nodeId, ackedEnd, ackedEnd + 100n), Buffer.alloc(50, 1)]));
    });
    await expectSessionError(t, 'end_lsn < begin_lsn', '08P01', async (c) => {
      const { nodeId } = await elect(c, wal);
      c.sendRaw(header(nodeId, ackedEnd, ackedEnd - 8n));
    });
    await expectSessionError(t, 'payload over 128 KiB', '08P01', async (c) => {
      const { nodeId } = await elect(c, wal);
      const n = 128 * 1024 + 1;
      c.sendRaw(Buffer.concat([header(nodeId, ackedEnd, ackedEnd + BigInt(n)), Buffer.alloc(n, 7)]));
    });
  });

  await t.test('messages the protocol state does not allow', async (t) => {
    await expectSessionError(t, 'wrong sender_id', '55000', async (c) => {
      const { nodeId } = await elect(c, wal);
      c.append({ senderId: { term: nodeId.term, uuid: new Uint8Array(16).fill(9) }, beginLsn: ackedEnd, endLsn: ackedEnd + 8n, restartLsn: 0n, commitLsn: 0n, wal: new Uint8Array(8) });
    });
    await expectSessionError(t, 'a gap after the local WAL', '08P01', async (c) => {
      const { nodeId } = await elect(c, wal);
      c.append({ senderId: nodeId, beginLsn: ackedEnd + 4096n, endLsn: ackedEnd + 4104n, restartLsn: 0n, commitLsn: 0n, wal: new Uint8Array(8) });
    });
    await expectSessionError(t, 'a vote below the stored one', '55000', async (c) => {
      await c.startWalPush();
      await c.greet(serverInfo(wal));
      const reply = await c.vote({ nodeId: { term: 0n, uuid: new Uint8Array(16) }, vcl: 0n, epoch: 0n });
      t.ok(reply.term > 0n, 'the refusal carries the stored vote');
    });
    await expectSessionError(t, 'a query during the push', '08P01', async (c) => {
      await elect(c, wal);
      c.raw.write(query('START_WAL_PUSH'));
    });
    await expectSessionError(t, 'COPY fail from the client', '08P01', async (c) => {
      await c.startWalPush();
      c.raw.write(tagged('f', Buffer.from('client gave up\0')));
    });
  });

  await t.test('server info that does not match the timeline', async (t) => {
    await expectSessionError(t, 'protocol_version 2', '0A000', async (c) => {
      await c.startWalPush();
      await c.greet(serverInfo(wal, 1n, { protocolVersion: 2 }));
    });
    await expectSessionError(t, 'another system_id', '55000', async (c) => {
      await c.startWalPush();
      await c.greet(serverInfo(wal, 1n, { systemId: wal.systemId + 1n }));
    });
    await expectSessionError(t, 'another wal_seg_size', '55000', async (c) => {
      await c.startWalPush();
      await c.greet(serverInfo(wal, 1n, { walSegSize: wal.segSize * 2 }));
    });
    await expectSessionError(t, 'a wal_seg_size that is not a power of two', '55000', async (c) => {
      await c.startWalPush();
      await c.greet(serverInfo(wal, 1n, { walSegSize: 12345 }));
    });
    await expectSessionError(t, 'ServerInfo for another timeline than the connection', '22023', async (c) => {
      await c.startWalPush();
      await c.greet(serverInfo(wal, 1n, { timelineId: new Uint8Array(16).fill(0x11) }));
    });
  });

  await t.test('invalid ids are refused before any file is touched', async (t) => {
    const bad = ['../../etc', '..', 'zz', '0123456789abcdef0123456789abcde', '0123456789abcdef0123456789abcdef0', `${TENANT}/..`, '/etc/passwd', 'g123456789abcdef0123456789abcdef', ''];
    for (const id of bad) {
      const variants: Array<Record<string, string>> = [
        { ztenantid: id, ztimelineid: TIMELINE },
        { tenant_id: TENANT, timeline_id: id },
        { options: `-c ztenantid=${TENANT} -c ztimelineid=${id.replace(/ /g, '\\ ')}` },
      ];
      for (const params of variants) {
        const c = await RawClient.connect(d.pgPort);
        const ms = await c.startup({ user: 'u', ...params });
        const last = ms[ms.length - 1];
        t.equal(last.tag, 'E', `id "${id}" via ${Object.keys(params).join(',')}: refused`);
        await c.expectClosed();
      }
    }
    await stillServing(t, 'invalid ids');
  });

  await t.test('garbage, truncation and oversized messages on the wire', async (t) => {
    // A message type the server does not take.
    let c = await RawClient.connect(d.pgPort);
    await c.startup({ user: 'u', options: OPTIONS });
    c.write(tagged('\x01', Buffer.alloc(4)));
    t.equal((await c.expectError()).C, '08P01', 'unknown message type');
    await c.expectClosed();
    // A length field far over the limit.
    c = await RawClient.connect(d.pgPort);
    await c.startup({ user: 'u', options: OPTIONS });
    c.write(Buffer.from('6401000000', 'hex'));
    t.equal((await c.expectError()).C, '08P01', 'oversized message');
    await c.expectClosed();
    // Same inside a push.
    const p = await PushClient.connect(d.pgPort);
    await elect(p, wal);
    p.raw.write(Buffer.from('64ffffff00', 'hex'));
    t.equal((await p.raw.expectError()).C, '08P01', 'oversized CopyData during a push');
    await p.raw.expectClosed();
    // Garbage start-up packets.
    for (const bytes of ['00000003', '7fffffff00030000', '0000000800020000', '0000000c1234567800000000']) {
      c = await RawClient.connect(d.pgPort);
      c.write(Buffer.from(bytes, 'hex'));
      const f = await c.expectError();
      t.match(f.C, /^(08P01|0A000)$/, `start-up ${bytes}: ${f.M}`);
      await c.expectClosed();
    }
    // Random garbage: after start-up and instead of it. Each connection ends (error or close), never the daemon.
    const rnd = xorshift32(42);
    for (let i = 0; i < 40; i++) {
      c = await RawClient.connect(d.pgPort);
      if (i % 2 === 0) await c.startup({ user: 'u', options: OPTIONS });
      const junk = Buffer.alloc(1 + Math.floor(rnd() * 3000));
      for (let j = 0; j < junk.length; j++) junk[j] = Math.floor(rnd() * 256);
      c.write(junk);
      c.end();
      await c.expectClosed(10_000);
    }
    // Truncated: a message cut short, then the client goes away.
    c = await RawClient.connect(d.pgPort);
    await c.startup({ user: 'u', options: OPTIONS });
    c.write(query('START_WAL_PUSH').subarray(0, 8));
    c.end();
    await c.expectClosed();
    // Half a startup packet, then gone.
    c = await RawClient.connect(d.pgPort);
    c.write(startupPacket({ user: 'u' }).subarray(0, 10));
    c.end();
    await c.expectClosed();
    // CopyData garbage in the push.
    await expectSessionError(t, 'random bytes as ServerInfo', '08P01', async (pc) => {
      await pc.startWalPush();
      pc.raw.write(copyDataMsg(Buffer.alloc(88 + 3, 0xee)));
    });
    await stillServing(t, 'garbage');
  });

  await t.test('after all that, the timeline takes WAL again', async (t) => {
    const c = await PushClient.connect(d.pgPort);
    const { greeting, nodeId } = await elect(c, wal);
    t.ok(greeting.flushLsn <= ackedEnd && greeting.flushLsn > wal.startLsn);
    const from = greeting.flushLsn;
    const to = from + 200_000n;
    c.append({ senderId: nodeId, beginLsn: from, endLsn: from + 100_000n, restartLsn: 0n, commitLsn: 0n, wal: wal.bytes.subarray(Number(from - wal.startLsn), Number(from - wal.startLsn) + 100_000) });
    c.append({ senderId: nodeId, beginLsn: from + 100_000n, endLsn: to, restartLsn: 0n, commitLsn: 0n, wal: wal.bytes.subarray(Number(from - wal.startLsn) + 100_000, Number(to - wal.startLsn)) });
    t.equal((await c.response()).flushLsn, from + 100_000n);
    t.equal((await c.response()).flushLsn, to);
    c.close();
    const stored = storedWal(dataDir, wal.startLsn, Number(to - wal.startLsn), wal.segSize);
    t.equal(commonPrefix(stored, wal.bytes), Number(to - wal.startLsn));
    t.same(listTree(root).filter((p) => !p.startsWith(join('data', TENANT, TIMELINE) + '/')), treeBefore);
  });
  await d.stop();
});
