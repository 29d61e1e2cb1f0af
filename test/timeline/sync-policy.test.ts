// When a sync round may block the event loop: only while one timeline of
// the daemon is syncing, and not for a while after a slow blocking round.
import t from 'tap';
import { ACTIVE_WINDOW_MS, POOL_AFTER_SLOW_MS, SLOW_BLOCKING_SYNC_MS, SyncPolicy } from '../../src/timeline/sync-policy.js';

function policy() {
  let now = 1_000_000;
  const p = new SyncPolicy(() => now);
  return { p, advance: (ms: number) => (now += ms) };
}

t.test('one busy timeline blocks; a second busy one sends both to the thread pool until it goes quiet', async (t) => {
  const { p, advance } = policy();
  t.ok(p.mayBlock('a'), 'nothing else syncing');
  p.synced('a', 1, true);
  advance(5);
  t.ok(p.mayBlock('a'), 'its own rounds do not count against it');
  t.notOk(p.mayBlock('b'), 'another timeline while a is busy');
  p.synced('b', 1, false);
  advance(5);
  t.notOk(p.mayBlock('a'), 'a, while b is busy');
  t.notOk(p.mayBlock('b'));
  p.synced('a', 1, false);
  advance(ACTIVE_WINDOW_MS + 1);
  p.synced('b', 1, false);
  t.ok(p.mayBlock('b'), 'a quiet for longer than the window');
  t.notOk(p.mayBlock('a'), 'b synced just now');
  t.same(p.stats, { blocking: 1, pool: 3, slowBlocking: 0 });
});

t.test('a slow blocking round sends that timeline to the thread pool for a while', async (t) => {
  const { p, advance } = policy();
  p.synced('a', SLOW_BLOCKING_SYNC_MS, true);
  t.ok(p.mayBlock('a'), 'exactly the limit is not slow');
  p.synced('a', SLOW_BLOCKING_SYNC_MS + 1, true);
  t.notOk(p.mayBlock('a'), 'after a slow one');
  advance(POOL_AFTER_SLOW_MS - 1);
  p.synced('a', 50, false);
  t.notOk(p.mayBlock('a'), 'slow thread-pool rounds do not extend it, but the period is not over');
  advance(1);
  t.ok(p.mayBlock('a'), 'then blocking again');
  t.same(p.stats, { blocking: 2, pool: 1, slowBlocking: 1 });
});
