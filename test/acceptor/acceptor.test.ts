import t from 'tap';
import { Acceptor, AcceptorError, type AcceptorStorage, type AppendResult } from '../../src/acceptor/index.js';
import { decodeControlFile, encodeControlFile, type NodeId, type SafeKeeperInfo, type SafeKeeperRequest, type ServerInfo } from '../../src/protocol/index.js';
import { id, SEG, server } from './fixtures.js';

/** Storage that records every call, and keeps the control file as encoded bytes (as a disk would). */
class RecordingStorage implements AcceptorStorage {
  calls: string[] = [];
  control: Buffer | null = null;
  wal = new Map<bigint, Uint8Array>();

  loadControl(): SafeKeeperInfo | null {
    return this.control ? decodeControlFile(this.control, 'mem') : null;
  }
  persistControl(state: SafeKeeperInfo): void {
    this.calls.push(`persist epoch=${state.epoch} vote=${state.server.nodeId.term}`);
    this.control = encodeControlFile(state);
  }
  writeWal(lsn: bigint, bytes: Uint8Array): void {
    this.calls.push(`write ${lsn}+${bytes.length}`);
    this.wal.set(lsn, Uint8Array.from(bytes));
  }
  truncateWal(lsn: bigint): void {
    this.calls.push(`truncate ${lsn}`);
  }
  syncWal(): void {
    this.calls.push('sync');
  }
  timelineHistory(): null {
    return null;
  }
  beginTimeline(tli: number, lsn: bigint): void {
    this.calls.push(`begin timeline ${tli} at ${lsn}`);
  }
  take(): string[] {
    const c = this.calls;
    this.calls = [];
    return c;
  }
}


function req(sender: NodeId, begin: bigint, end: bigint, over: Partial<SafeKeeperRequest> = {}): SafeKeeperRequest {
  const wal = over.wal ?? new Uint8Array(Number(end - begin)).fill(0xab);
  return { senderId: sender, beginLsn: begin, endLsn: end, restartLsn: 0n, commitLsn: 0n, ...over, wal };
}

function throwsCode(t: import('tap').Test, fn: () => unknown, code: string, message?: RegExp): void {
  try {
    fn();
    t.fail(`expected AcceptorError ${code}`);
  } catch (e) {
    t.ok(e instanceof AcceptorError, `AcceptorError (${(e as Error).message})`);
    t.equal((e as AcceptorError).code, code);
    if (message) t.match((e as Error).message, message);
  }
}

function ack(r: AppendResult) {
  if (r.kind !== 'ack') throw new Error(`expected an ack, got ${r.kind}`);
  return r;
}

/** An acceptor that voted for `leader` in a fresh session; returns both. */
function elected(storage: RecordingStorage, leader: NodeId, walEnd = 0n, vcl = 0n, epoch = leader.term) {
  const acc = new Acceptor(storage);
  const s = acc.newSession();
  s.greet(server(), walEnd);
  t.ok(s.vote({ nodeId: leader, vcl, epoch }).granted);
  storage.take();
  return { acc, s };
}

t.test('greeting: stores server info, keeps the stored vote, flush_lsn from the scan', (t) => {
  const st = new RecordingStorage();
  const acc = new Acceptor(st);
  const info = acc.newSession().greet(server(), 0x1000n);
  t.equal(info.magic, 0xcafeceef);
  t.equal(info.formatVersion, 2);
  t.equal(info.flushLsn, 0x1000n);
  t.equal(info.server.systemId, 7n);
  t.equal(info.server.nodeId.term, 0n, 'the proposer node_id is not adopted');
  t.same(st.take(), ['persist epoch=0 vote=0'], 'a new identity is persisted');
  acc.newSession().greet(server({ walEnd: 0x5000n }), 0x2000n);
  t.same(st.take(), [], 'same identity: nothing to persist');
  t.equal(acc.state.flushLsn, 0x2000n);

  // the stored vote survives a greeting with a higher node id
  const s = acc.newSession();
  s.greet(server(), 0n);
  s.vote({ nodeId: id(5n), vcl: 0n, epoch: 5n });
  const again = acc.newSession().greet(server({ nodeId: id(50n) }), 0n);
  t.equal(again.server.nodeId.term, 5n);
  t.end();
});

t.test('greeting refusals', (t) => {
  const st = new RecordingStorage();
  new Acceptor(st).newSession().greet(server(), 0n);
  const acc = new Acceptor(st);
  const bad: Array<[Partial<ServerInfo>, string, RegExp]> = [
    [{ protocolVersion: 2 }, 'protocol-version', /unsupported protocol_version 2/],
    [{ systemId: 8n }, 'system-id-mismatch', /system 7, the proposer is system 8/],
    [{ walSegSize: 1 << 20 }, 'wal-seg-size-mismatch', /uses 16777216 bytes, the proposer 1048576/],
    [{ tenantId: new Uint8Array(16).fill(0x12) }, 'tenant-mismatch', /tenant 1111/],
    [{ timelineId: new Uint8Array(16).fill(0x23) }, 'timeline-mismatch', /timeline 2222/],
  ];
  for (const [over, code, msg] of bad) {
    const s = acc.newSession();
    throwsCode(t, () => s.greet(server(over), 0n), code, msg);
    t.equal(s.phase, 'failed');
    throwsCode(t, () => s.vote({ nodeId: id(1n), vcl: 0n, epoch: 1n }), 'out-of-order', /after an error ended the session/);
  }
  throwsCode(t, () => new Acceptor(new RecordingStorage()).newSession().greet(server({ walSegSize: 3 << 20 }), 0n), 'invalid-wal-seg-size');
  // zero stored values accept anything valid
  t.equal(new Acceptor(new RecordingStorage()).newSession().greet(server({ systemId: 123n, walSegSize: 1 << 30 }), 0n).server.systemId, 123n);
  t.end();
});

t.test('voting: NodeId order, durable before the grant', (t) => {
  const st = new RecordingStorage();
  const acc = new Acceptor(st);
  const s1 = acc.newSession();
  s1.greet(server(), 0x100n);
  st.take();
  t.same(s1.vote({ nodeId: id(3n, 5), vcl: 0n, epoch: 3n }), { granted: true, reply: id(3n, 5) });
  t.same(st.take(), ['sync', 'persist epoch=0 vote=3'], 'WAL synced, then the vote persisted, before the reply');

  const lower = acc.newSession();
  lower.greet(server(), 0x100n);
  t.same(lower.vote({ nodeId: id(3n, 4), vcl: 0n, epoch: 3n }), { granted: false, reply: id(3n, 5) }, 'same term, lower uuid: refused with the stored vote');
  t.equal(lower.phase, 'refused');
  throwsCode(t, () => lower.append(req(id(3n, 4), 0x100n, 0x110n)), 'out-of-order', /after the vote was refused/);

  const same = acc.newSession();
  same.greet(server(), 0x100n);
  st.take();
  t.same(same.vote({ nodeId: id(3n, 5), vcl: 0n, epoch: 3n }).granted, true, 'the same node id again (a reconnect) is granted');
  t.same(st.take(), ['sync'], 'nothing new to persist');

  const higher = acc.newSession();
  higher.greet(server(), 0x100n);
  t.same(higher.vote({ nodeId: id(4n, 0), vcl: 0n, epoch: 4n }).granted, true);

  // after a restart the vote is remembered (durable), so the old term is refused
  const rebooted = new Acceptor(st);
  t.equal(rebooted.state.server.nodeId.term, 4n);
  const old = rebooted.newSession();
  old.greet(server(), 0n);
  t.equal(old.vote({ nodeId: id(3n, 5), vcl: 0n, epoch: 3n }).granted, false);
  t.end();
});

t.test('message order', (t) => {
  const acc = new Acceptor(new RecordingStorage());
  const s = acc.newSession();
  throwsCode(t, () => s.vote({ nodeId: id(1n), vcl: 0n, epoch: 1n }), 'out-of-order', /RequestVote before ServerInfo/);
  const s2 = acc.newSession();
  throwsCode(t, () => s2.append(req(id(1n), 1n, 2n)), 'out-of-order', /SafeKeeperRequest before ServerInfo/);
  const s3 = acc.newSession();
  s3.greet(server(), 0n);
  throwsCode(t, () => s3.append(req(id(1n), 1n, 2n)), 'out-of-order', /before RequestVote/);
  throwsCode(t, () => s3.greet(server(), 0n), 'out-of-order', /ServerInfo before RequestVote/);
  t.end();
});

t.test('appends: sender, epoch switch, flush, durability order', (t) => {
  const st = new RecordingStorage();
  const leader = id(2n);
  const { acc, s } = elected(st, leader, 0n, 0x200n, 2n);
  throwsCode(t, () => acc.newSession().append(req(leader, 1n, 2n)), 'out-of-order');

  // first WAL of an empty acceptor may start anywhere
  let r = ack(s.append(req(leader, 0x100n, 0x180n, { commitLsn: 0x100n })));
  t.same(st.take(), ['truncate 256', 'write 256+128'], 'the first append clears what follows; not past vcl yet: no epoch switch');
  t.equal(r.response.epoch, 0n);
  t.equal(r.response.flushLsn, 0x180n);
  t.equal(r.syncThrough, 0x180n);
  t.same(r.response.hsFeedback, { ts: 0n, xmin: 0xffffffffffffffffn, catalogXmin: 0xffffffffffffffffn });

  r = ack(s.append(req(leader, 0x180n, 0x200n)));
  t.same(st.take(), ['write 384+128'], 'end = vcl is not past it');
  r = ack(s.append(req(leader, 0x200n, 0x201n, { commitLsn: 0x180n, restartLsn: 0x100n })));
  t.same(st.take(), ['write 512+1', 'sync', 'persist epoch=2 vote=2'], 'epoch switch: WAL synced, then the control file');
  t.equal(r.response.epoch, 2n);
  t.equal(acc.state.epoch, 2n);
  t.equal(acc.state.flushLsn, 0x201n);
  t.equal(acc.state.commitLsn, 0x180n);
  t.equal(acc.state.restartLsn, 0x100n);

  r = ack(s.append(req(leader, 0x201n, 0x300n, { commitLsn: 0x10n })));
  t.same(st.take(), ['write 513+255'], 'no second switch');
  t.equal(acc.state.commitLsn, 0x180n, 'commit_lsn does not go back');

  throwsCode(t, () => s.append(req(id(1n), 0x300n, 0x301n)), 'wrong-sender', /is not the voted node_id/);
  t.equal(s.phase, 'failed');
  t.end();
});

t.test('a session whose proposer lost the vote is refused', (t) => {
  const st = new RecordingStorage();
  const { acc, s } = elected(st, id(2n));
  s.append(req(id(2n), 0x100n, 0x110n));
  const newer = acc.newSession();
  newer.greet(server(), 0x110n);
  newer.vote({ nodeId: id(3n), vcl: 0x110n, epoch: 3n });
  throwsCode(t, () => s.append(req(id(2n), 0x110n, 0x120n)), 'wrong-sender', /no longer the vote/);
  t.end();
});

t.test('epoch switch needs WAL past both flush_lsn and vcl', (t) => {
  const st = new RecordingStorage();
  const { acc, s } = elected(st, id(4n), 0x500n, 0x100n, 4n);
  s.append(req(id(4n), 0x500n, 0x500n)); // heartbeat: never switches
  t.equal(acc.state.epoch, 0n);
  s.append(req(id(4n), 0x500n, 0x540n));
  t.equal(acc.state.epoch, 4n, 'past flush (0x500) > vcl (0x100)');
  t.end();
});

t.test('the first append of a session truncates at its begin; later gaps are errors', (t) => {
  const st = new RecordingStorage();
  const leader = id(6n);
  const { acc, s } = elected(st, leader, 0x400n, 0x300n, 6n);
  s.append(req(leader, 0x300n, 0x340n));
  t.same(st.take(), ['truncate 768', 'write 768+64', 'sync', 'persist epoch=6 vote=6'], 'truncated at begin before writing');
  t.equal(acc.state.flushLsn, 0x340n);
  t.equal(acc.state.epoch, 6n, '0x340 > max(flush 0x300 after truncation, vcl 0x300)');
  s.append(req(leader, 0x340n, 0x380n));
  t.same(st.take(), ['write 832+64'], 'only the first append truncates');
  throwsCode(t, () => s.append(req(leader, 0x390n, 0x3a0n)), 'wal-gap', /does not continue this session's stream, which ended at 0\/380/);

  const st2 = new RecordingStorage();
  const { s: s2 } = elected(st2, leader, 0x400n);
  throwsCode(t, () => s2.append(req(leader, 0x410n, 0x420n)), 'wal-gap', /would leave a gap: local WAL ends at 0\/400/);
  t.same(st2.take(), [], 'nothing written');

  const st3 = new RecordingStorage();
  const { acc: acc3, s: s3 } = elected(st3, leader, 0x400n);
  s3.append(req(leader, 0x400n, 0x410n));
  t.same(st3.take(), ['truncate 1024', 'write 1024+16', 'sync', 'persist epoch=6 vote=6'], 'starting exactly at flush_lsn: a torn tail after it is cleared too');
  t.equal(acc3.state.flushLsn, 0x410n);
  throwsCode(t, () => s3.append(req(leader, 0x400n, 0x410n)), 'wal-gap', /ended at 0\/410/);
  t.end();
});

t.test('heartbeats are answered without writing', (t) => {
  const st = new RecordingStorage();
  const leader = id(2n);
  const { acc, s } = elected(st, leader, 0x400n);
  let r = ack(s.append(req(leader, 0x300n, 0x300n, { commitLsn: 0x300n })));
  t.same(st.take(), [], 'a heartbeat first does not truncate');
  t.equal(r.response.flushLsn, 0x300n);
  t.equal(acc.state.commitLsn, 0x300n);
  r = ack(s.append(req(leader, 0x900n, 0x900n)));
  t.equal(r.response.flushLsn, 0x400n, 'vouches only for WAL it has');
  s.append(req(leader, 0x400n, 0x410n));
  r = ack(s.append(req(leader, 0x410n, 0x410n, { commitLsn: 0x410n })));
  t.equal(r.response.flushLsn, 0x410n);
  t.equal(r.syncThrough, 0x410n, 'the host still syncs what the reply vouches for');
  throwsCode(t, () => s.append(req(leader, 0x400n, 0x400n)), 'wal-gap');
  t.end();
});

t.test('end of stream', (t) => {
  const st = new RecordingStorage();
  const { s } = elected(st, id(2n));
  t.same(s.append(req(id(0n), 0n, 0n)), { kind: 'end' }, 'begin_lsn 0 ends the stream, whoever sends it');
  t.equal(s.phase, 'ended');
  throwsCode(t, () => s.append(req(id(2n), 1n, 1n)), 'out-of-order', /after the end of the stream/);
  t.end();
});

t.test('bad requests', (t) => {
  const leader = id(2n);
  const cases: Array<[SafeKeeperRequest, RegExp]> = [
    [req(leader, 0x200n, 0x100n, { wal: new Uint8Array(0) }), /is before begin_lsn/],
    [req(leader, 0x100n, 0x110n, { wal: new Uint8Array(15) }), /16 but 15 WAL bytes follow/],
    [req(leader, 0x100n, 0x100n + 131073n), /more than the 131072-byte limit/],
  ];
  for (const [r, msg] of cases) {
    const { s } = elected(new RecordingStorage(), leader);
    throwsCode(t, () => s.append(r), 'bad-request', msg);
  }
  t.end();
});

t.test('control file synced when restart_lsn moved more than a segment', (t) => {
  const st = new RecordingStorage();
  const leader = id(2n);
  const { s } = elected(st, leader, 0x100n, 0x100n, 0n); // epoch 0: never switches
  s.append(req(leader, 0x100n, 0x110n, { restartLsn: BigInt(SEG) }));
  t.same(st.take(), ['truncate 256', 'write 256+16'], 'exactly one segment: not more');
  s.append(req(leader, 0x110n, 0x120n, { restartLsn: BigInt(SEG) + 1n }));
  t.same(st.take(), ['write 272+16', 'persist epoch=0 vote=2']);
  s.append(req(leader, 0x120n, 0x130n, { restartLsn: 2n * BigInt(SEG) }));
  t.same(st.take(), ['write 288+16'], 'counted from the last sync');
  t.end();
});

t.test('hs_feedback comes from the provider', (t) => {
  const st = new RecordingStorage();
  new Acceptor(st).newSession().greet(server(), 0n);
  let n = 0n;
  const acc = new Acceptor(st, { hsFeedback: () => ({ ts: ++n, xmin: 100n, catalogXmin: 90n }) });
  const s = acc.newSession();
  s.greet(server(), 0n);
  s.vote({ nodeId: id(1n), vcl: 0n, epoch: 1n });
  const r = ack(s.append(req(id(1n), 0x10n, 0x20n)));
  t.same(r.response.hsFeedback, { ts: 1n, xmin: 100n, catalogXmin: 90n });
  t.end();
});

t.test('a pg_version change is logged, not fatal', (t) => {
  const logs: string[] = [];
  const st = new RecordingStorage();
  const acc = new Acceptor(st, { log: (m) => logs.push(m) });
  acc.newSession().greet(server(), 0n);
  acc.newSession().greet(server({ pgVersion: 150005 }), 0n);
  t.same(logs, ['pg_version changed from 150004 to 150005']);
  t.end();
});

t.test('state is a copy', (t) => {
  const acc = new Acceptor(new RecordingStorage());
  const s = acc.state;
  s.epoch = 99n;
  s.server.nodeId.uuid[0] = 1;
  t.equal(acc.state.epoch, 0n);
  t.equal(acc.state.server.nodeId.uuid[0], 0);
  t.end();
});
