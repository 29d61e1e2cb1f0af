// The acceptor and PostgreSQL timelines (docs/protocol.md §5.3): the
// anonymous greeting, the move to a descendant timeline at a greeting, and
// the refusals that fence an old primary, leaving storage untouched.
import t from 'tap';
import { Acceptor, AcceptorError, type AcceptorStorage } from '../../src/acceptor/index.js';
import { decodeControlFile, encodeControlFile, type SafeKeeperInfo, type ServerInfo } from '../../src/protocol/index.js';
import type { HistoryEntry } from '../../src/wal/history.js';
import { id, SEG, server } from './fixtures.js';

class MemStorage implements AcceptorStorage {
  calls: string[] = [];
  control: Buffer | null = null;
  histories = new Map<number, HistoryEntry[]>();
  loadControl(): SafeKeeperInfo | null {
    return this.control ? decodeControlFile(this.control, 'mem') : null;
  }
  persistControl(state: SafeKeeperInfo): void {
    this.calls.push(`persist tli=${state.server.timeline} commit=${state.commitLsn} restart=${state.restartLsn}`);
    this.control = encodeControlFile(state);
  }
  writeWal(lsn: bigint, bytes: Uint8Array): void {
    this.calls.push(`write ${lsn}+${bytes.length}`);
  }
  truncateWal(lsn: bigint): void {
    this.calls.push(`truncate ${lsn}`);
  }
  syncWal(): void {
    this.calls.push('sync');
  }
  timelineHistory(tli: number): readonly HistoryEntry[] | null {
    return this.histories.get(tli) ?? null;
  }
  beginTimeline(tli: number, lsn: bigint): void {
    this.calls.push(`begin ${tli} at ${lsn}`);
  }
  take(): string[] {
    const c = this.calls;
    this.calls = [];
    return c;
  }
}

const anonymous = (over: Partial<ServerInfo> = {}) => server({ systemId: 0n, timeline: 0, walSegSize: 0, pgVersion: 0, ...over });
const SWITCH = 0x3000028n;

/** Storage holding timeline-1 WAL with commit/restart positions past the switch point, and 2.history. */
function onTimeline1(): MemStorage {
  const st = new MemStorage();
  const acc = new Acceptor(st);
  const s = acc.newSession();
  s.greet(server(), 0x3000000n);
  s.vote({ nodeId: id(1n), vcl: 0n, epoch: 1n });
  s.append({ senderId: id(1n), beginLsn: 0x3000000n, endLsn: 0x3000100n, commitLsn: 0x3000100n, restartLsn: 0x3000100n, wal: new Uint8Array(0x100) });
  st.persistControl(acc.state);
  st.histories.set(2, [{ timeline: 1, switchpoint: SWITCH }]);
  st.take();
  return st;
}

function refused(t: import('tap').Test, fn: () => unknown, message: RegExp): void {
  try {
    fn();
    t.fail('expected a refusal');
  } catch (e) {
    t.ok(e instanceof AcceptorError && e.code === 'pg-timeline-mismatch', `pg-timeline-mismatch (${(e as Error).message})`);
    t.match((e as Error).message, message);
  }
}

t.test('an anonymous greeting neither checks nor replaces the stored identity', (t) => {
  const st = onTimeline1();
  const acc = new Acceptor(st);
  const s = acc.newSession();
  const info = s.greet(anonymous(), 0x3000100n);
  t.equal(info.server.systemId, 7n, 'the stored system id is reported');
  t.equal(info.server.timeline, 1);
  t.equal(info.server.walSegSize, SEG);
  t.equal(info.flushLsn, 0x3000100n, 'flush_lsn from the scan');
  t.same(st.take(), [], 'nothing persisted');
  t.ok(s.vote({ nodeId: id(2n), vcl: 0x3000100n, epoch: 2n }).granted, 'the session votes as usual');
  t.equal(decodeControlFile(st.control!, 'mem').server.systemId, 7n, 'identity kept on disk');
  // the ids are still checked
  const bad = new Acceptor(st).newSession();
  t.throws(() => bad.greet(anonymous({ tenantId: new Uint8Array(16).fill(0x99) }), 0n), { code: 'tenant-mismatch' });
  t.end();
});

t.test('an anonymous greeting on a new timeline stores nothing, and WAL needs a real greeting first', (t) => {
  const st = new MemStorage();
  const acc = new Acceptor(st);
  const s = acc.newSession();
  const info = s.greet(anonymous(), 0n);
  t.equal(info.server.systemId, 0n);
  t.same(st.take(), []);
  t.ok(s.vote({ nodeId: id(1n), vcl: 0n, epoch: 1n }).granted);
  t.throws(() => s.append({ senderId: id(1n), beginLsn: 0x100n, endLsn: 0x200n, commitLsn: 0n, restartLsn: 0n, wal: new Uint8Array(0x100) }), {
    code: 'bad-request',
    message: /no WAL segment size is known/,
  });
  t.end();
});

t.test('a greeting from a descendant timeline moves: truncate at X, caps, persisted, survives a restart', (t) => {
  const st = onTimeline1();
  const acc = new Acceptor(st);
  const info = acc.newSession().greet(server({ timeline: 2 }), 0x3000100n);
  t.same(st.take(), [`truncate ${SWITCH}`, `begin 2 at ${SWITCH}`, `persist tli=2 commit=${SWITCH} restart=${SWITCH}`], 'truncate, begin, then persist');
  t.equal(info.flushLsn, SWITCH, 'flush_lsn at the switch point');
  t.equal(info.commitLsn, SWITCH);
  t.equal(info.restartLsn, SWITCH);
  t.equal(info.server.timeline, 2);
  const again = new Acceptor(st).newSession().greet(server({ timeline: 2 }), SWITCH + 0x80n);
  t.equal(again.server.timeline, 2, 'the move survives a restart');
  t.equal(again.flushLsn, SWITCH + 0x80n);
  t.same(st.take(), [], 'no second move');
  t.end();
});

t.test("a session still streaming from the old timeline gets nothing more acknowledged after a move", (t) => {
  const st = onTimeline1();
  const acc = new Acceptor(st);
  const old = acc.newSession();
  old.greet(server(), 0x3000100n);
  t.ok(old.vote({ nodeId: id(5n), vcl: 0x3000100n, epoch: 5n }).granted);
  acc.newSession().greet(server({ timeline: 2 }), 0x3000100n);
  st.take();
  t.throws(() => old.append({ senderId: id(5n), beginLsn: SWITCH, endLsn: SWITCH + 0x10n, commitLsn: 0n, restartLsn: 0n, wal: new Uint8Array(0x10) }), {
    code: 'pg-timeline-mismatch',
    message: /primary is on PostgreSQL timeline 1, but the timeline moved to PostgreSQL timeline 2/,
  });
  t.same(st.take(), [], 'nothing written');
  t.end();
});

t.test('a move with WAL ending before the switch point keeps flush_lsn', (t) => {
  const st = onTimeline1();
  const info = new Acceptor(st).newSession().greet(server({ timeline: 2 }), 0x3000010n);
  t.equal(info.flushLsn, 0x3000010n);
  t.end();
});

t.test('refusals leave the storage untouched', (t) => {
  const st = onTimeline1();
  const before = Buffer.from(st.control!);
  refused(t, () => new Acceptor(st).newSession().greet(server({ timeline: 3 }), 0n), /no history stored for PostgreSQL timeline 3 \(PUT_TIMELINE_HISTORY first\)/);
  st.histories.set(4, [{ timeline: 3, switchpoint: 0x5000000n }]);
  refused(t, () => new Acceptor(st).newSession().greet(server({ timeline: 4 }), 0n), /timeline 4, which does not descend from PostgreSQL timeline 1/);
  t.same(st.take(), [], 'no truncation, no persist');
  t.same(st.control, before);

  // moved to 2: the old primary (timeline 1) is refused, naming the switch point
  new Acceptor(st).newSession().greet(server({ timeline: 2 }), 0n);
  st.take();
  const moved = Buffer.from(st.control!);
  const s = new Acceptor(st).newSession();
  refused(
    t,
    () => s.greet(server({ timeline: 1 }), 0n),
    /^the proposer's primary is on PostgreSQL timeline 1, but this timeline holds WAL of PostgreSQL timeline 2, which forked from timeline 1 at 0\/3000028$/,
  );
  t.equal(s.phase, 'failed');
  t.same(st.take(), []);
  t.same(st.control, moved);
  t.end();
});
