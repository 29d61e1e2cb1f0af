import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { TimelineRegistry } from '../../src/timeline/registry.js';

t.test('start-up removes the remains of a timeline deletion interrupted by a crash', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'wk-registry-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const tenant = 'ab'.repeat(16);
  const timeline = 'cd'.repeat(16);
  const leftover = join(root, tenant, `.${timeline}.deleting-1234`);
  mkdirSync(leftover, { recursive: true });
  writeFileSync(join(leftover, 'safekeeper.control'), 'stale');
  const unrelated = join(root, tenant, 'notes.txt');
  writeFileSync(unrelated, 'kept');

  const registry = new TimelineRegistry({ root, log: silentLogger() });
  await registry.loadAll();

  t.notOk(existsSync(leftover), 'the renamed-away directory is gone');
  t.ok(existsSync(unrelated), 'other files in the tenant directory are left alone');
  t.equal(registry.size, 0, 'the leftover was never loaded as a timeline');
  await registry.closeAll();
});
