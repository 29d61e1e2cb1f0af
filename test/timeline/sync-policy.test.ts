// When a sync round may block the event loop: only while one timeline of
// the daemon is syncing, and not for a while after a slow blocking round.
import t from 'tap';
import { ACTIVE_WINDOW_MS, BLOCKING_MAX_BYTES, POOL_AFTER_SLOW_MS, SLOW_BLOCKING_SYNC_MS, SyncPolicy } from '../../src/timeline/sync-policy.js';

function policy() {
  let now = 1_000_000;
  const p = new SyncPolicy(() => now);
  return { p, advance: (ms: number) => (now += ms) };
}

t.test('one busy timeline blocks; a second busy one sends both to the thread pool until it goes quiet', async (t) => {
  const { p, advance } = policy();
  t.ok(p.mayBlock('a', 300), 'nothing else syncing');
  p.synced('a', 1, true);
  advance(5);
  t.ok(p.mayBlock('a', 300), 'its own rounds do not count against it');
  t.notOk(p.mayBlock('b', 300), 'another timeline while a is busy');
  p.synced('b', 1, false);
  advance(5);
  t.notOk(p.mayBlock('a', 300), 'a, while b is busy');
  t.notOk(p.mayBlock('b', 300));
  p.synced('a', 1, false);
  advance(ACTIVE_WINDOW_MS + 1);
  p.synced('b', 1, false);
  t.ok(p.mayBlock('b', 300), 'a quiet for longer than the window');
  t.notOk(p.mayBlock('a', 300), 'b synced just now');
  t.same(p.stats, { blocking: 1, pool: 3, slowBlocking: 0 });
});

t.test('a slow blocking round sends that timeline to the thread pool for a while', async (t) => {
  const { p, advance } = policy();
  p.synced('a', SLOW_BLOCKING_SYNC_MS, true);
  t.ok(p.mayBlock('a', 300), 'exactly the limit is not slow');
  p.synced('a', SLOW_BLOCKING_SYNC_MS + 1, true);
  t.notOk(p.mayBlock('a', 300), 'after a slow one');
  advance(POOL_AFTER_SLOW_MS - 1);
  p.synced('a', 50, false);
  t.notOk(p.mayBlock('a', 300), 'slow thread-pool rounds do not extend it, but the period is not over');
  advance(1);
  t.ok(p.mayBlock('a', 300), 'then blocking again');
  t.same(p.stats, { blocking: 2, pool: 1, slowBlocking: 1 });
});

t.test('a large round (bulk ingest, catch-up) uses the thread pool', async (t) => {
  const { p } = policy();
  t.ok(p.mayBlock('a', BLOCKING_MAX_BYTES), 'up to the limit');
  t.notOk(p.mayBlock('a', BLOCKING_MAX_BYTES + 1), 'beyond it');
});
