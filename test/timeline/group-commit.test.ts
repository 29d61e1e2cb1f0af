// Group commit over a fake segment store: one sync covers every write that
// arrived before it, nothing counts as durable before its sync finished,
// and the blocking and background syncs keep the same books.
import t from 'tap';
import { GroupCommit, type SyncableWal } from '../../src/timeline/group-commit.js';

/** A store whose background syncs finish when the test says so. */
class FakeWal implements SyncableWal {
  needsSync = false;
  readonly pending: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  syncNows = 0;
  failNow: Error | undefined;

  sync(): Promise<void> {
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  syncNow(): void {
    this.syncNows++;
    if (this.failNow) throw this.failNow;
  }

  async finish(err?: Error): Promise<void> {
    const p = this.pending.shift()!;
    if (err) p.reject(err);
    else p.resolve();
    // Let the group commit's continuation run.
    await new Promise((r) => setImmediate(r));
  }
}

function setup(mayBlock?: (bytes: number) => boolean) {
  const durable: bigint[] = [];
  const failures: Error[] = [];
  const rounds: boolean[] = [];
  let halted = false;
  const gc = new GroupCommit({
    synced: (synced, _seconds, blocking) => {
      durable.push(synced);
      rounds.push(blocking);
    },
    mayBlock,
    failed: (err) => {
      failures.push(err);
      halted = true;
      return new Error(`wrapped: ${err.message}`);
    },
    halted: () => halted,
  });
  const wal = new FakeWal();
  gc.wal = wal;
  return { gc, wal, durable, failures, rounds };
}

t.test('one sync covers the writes that arrived together; later ones wait for the next', async (t) => {
  const { gc, wal, durable } = setup();
  gc.wrote(100n);
  gc.wrote(200n);
  gc.request(200n);
  gc.request(200n);
  t.equal(wal.pending.length, 1, 'one sync for the batch');
  t.equal(gc.syncedLsn, 0n, 'nothing durable before the sync finished');
  gc.wrote(300n);
  gc.request(300n);
  t.equal(wal.pending.length, 1, 'a write during the sync waits for the next one');
  await wal.finish();
  t.same(durable, [200n], 'the first sync covers what was written when it started');
  t.equal(wal.pending.length, 1, 'the next sync starts by itself');
  await wal.finish();
  t.same(durable, [200n, 300n]);
  t.equal(gc.syncedLsn, 300n);
  await gc.quiesce();
  t.equal(wal.pending.length, 0, 'nothing left to sync');
});

t.test('syncNow: blocking, same bookkeeping', async (t) => {
  const { gc, wal, durable } = setup();
  gc.wrote(500n);
  gc.syncNow();
  t.equal(wal.syncNows, 1);
  t.equal(gc.syncedLsn, 500n);
  t.same(durable, [500n]);
});

t.test('a truncation during a sync: the sync no longer moves the durable position', async (t) => {
  const { gc, wal, durable } = setup();
  gc.wrote(1000n);
  gc.request();
  gc.truncated(400n);
  t.equal(gc.syncedLsn, 400n, 'everything below the cut counts as synced');
  await wal.finish();
  t.same(durable, [400n], 'the old sync reports only the position after the cut');
});

t.test('a failed sync is reported once and stops further syncs', async (t) => {
  const { gc, wal, durable, failures } = setup();
  gc.wrote(100n);
  gc.request();
  await wal.finish(new Error('EIO'));
  t.same(failures.map((e) => e.message), ['EIO']);
  t.same(durable, [], 'nothing became durable');
  gc.wrote(200n);
  gc.request();
  t.equal(wal.pending.length, 0, 'no sync after the failure');
  await gc.quiesce();
});

t.test('a failed syncNow throws what the failure hook returns', async (t) => {
  const { gc, wal } = setup();
  wal.failNow = new Error('ENOSPC');
  gc.wrote(100n);
  t.throws(() => gc.syncNow(), { message: 'wrapped: ENOSPC' });
  t.equal(gc.syncedLsn, 0n);
});

t.test('without files nothing is synced until a position is wanted beyond the durable one', async (t) => {
  const durable: bigint[] = [];
  const gc = new GroupCommit({ synced: (s) => durable.push(s), failed: (e) => e, halted: () => false });
  gc.reset(100n);
  gc.request(100n);
  gc.syncNow();
  await gc.quiesce();
  t.same(durable, [], 'nothing to do');
  gc.request(200n);
  await gc.quiesce();
  t.same(durable, [200n], 'a wanted position beyond the durable end is reached once the (empty) round ends');
});

t.test('a round the policy lets block runs syncNow at the end of the event-loop turn, covering the writes made in it', async (t) => {
  let allow = true;
  const { gc, wal, durable, rounds } = setup(() => allow);
  gc.wrote(100n);
  gc.request(100n);
  t.equal(wal.syncNows, 0, 'not inside request()');
  t.equal(wal.pending.length, 0, 'nothing handed to the thread pool');
  // More appends in the same turn join the round.
  gc.wrote(150n);
  gc.request(150n);
  await Promise.resolve();
  t.equal(wal.syncNows, 0, 'not before the turn ends');
  await new Promise((r) => setImmediate(r));
  t.equal(wal.syncNows, 1, 'one fdatasync for both');
  t.same(durable, [150n], 'both writes durable, reported after the fdatasync');
  t.same(rounds, [true]);
  allow = false;
  gc.wrote(200n);
  gc.request(200n);
  t.equal(wal.pending.length, 1, 'refused: the thread pool, started at once');
  await wal.finish();
  t.same(durable, [150n, 200n]);
  t.same(rounds, [true, false]);
});

t.test('a truncation before a blocking round starts: the round counts from the truncated position', async (t) => {
  const { gc, wal, durable } = setup(() => true);
  gc.wrote(500n);
  gc.request(500n);
  gc.truncated(300n);
  await new Promise((r) => setImmediate(r));
  t.equal(wal.syncNows, 1);
  t.equal(gc.syncedLsn, 300n, 'not moved past the truncation');
  t.same(durable, [300n]);
});

t.test('a failed blocking round is reported like a failed background one and stops further syncs', async (t) => {
  const { gc, wal, durable, failures } = setup(() => true);
  wal.failNow = new Error('EIO');
  gc.wrote(100n);
  gc.request(100n);
  await new Promise((r) => setImmediate(r));
  t.same(durable, []);
  t.equal(failures.length, 1);
  t.equal(failures[0].message, 'EIO');
  wal.failNow = undefined;
  gc.wrote(200n);
  gc.request(200n);
  t.equal(wal.syncNows, 1, 'halted: no further round');
});

t.test('the policy is told how much the round would sync', async (t) => {
  const asked: number[] = [];
  const { gc, wal } = setup((bytes) => (asked.push(bytes), false));
  gc.wrote(4096n);
  gc.request(4096n);
  await wal.finish();
  gc.wrote(4096n + 100n);
  gc.request();
  t.same(asked, [4096, 100]);
});
