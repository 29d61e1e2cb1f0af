// `walkeeper run`'s archive and retention flags: defaults, values, and a
// clear usage error naming the flag for bad ones (and a readable line and
// exit 2 from the CLI).
import t from 'tap';
import { parseRunArgs } from '../../src/commands/run.js';
import { UsageError } from '../../src/commands/errors.js';
import { runCli, tempDir } from '../daemon/helpers.js';

t.test('defaults', (t) => {
  const o = parseRunArgs([]);
  if (o === 'help') throw new Error('help');
  t.equal(o.archive, undefined);
  t.same(o.walLifecycle, { walKeepSize: 64 << 20, walKeepTimeMs: 0, maxTimelineDiskUsage: 0, archiveUploads: 4, archiveVerifyIntervalMs: 600_000 });
  t.end();
});

t.test('values', (t) => {
  const o = parseRunArgs([
    '--remote-storage', 's3://bucket/prefix', '--remote-storage-endpoint', 'http://127.0.0.1:9000',
    '--wal-keep-size', '256MB', '--wal-keep-time', '7d', '--max-timeline-disk-usage', '20GB',
    '--archive-uploads', '8', '--archive-verify-interval', '90s',
  ]);
  if (o === 'help') throw new Error('help');
  t.same(o.archive, { url: 's3://bucket/prefix', endpoint: 'http://127.0.0.1:9000' });
  t.same(o.walLifecycle, { walKeepSize: 256 << 20, walKeepTimeMs: 7 * 86_400_000, maxTimelineDiskUsage: 20 * 2 ** 30, archiveUploads: 8, archiveVerifyIntervalMs: 90_000 });
  const zero = parseRunArgs(['--wal-keep-size', '0', '--wal-keep-time', '0', '--max-timeline-disk-usage', '0']);
  if (zero === 'help') throw new Error('help');
  t.equal(zero.walLifecycle.walKeepSize, 0);
  t.equal(zero.walLifecycle.walKeepTimeMs, 0);
  t.equal(zero.walLifecycle.maxTimelineDiskUsage, 0);
  t.end();
});

t.test('bad values name the flag', (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--remote-storage', 'ftp://x'], /--remote-storage: /],
    [['--remote-storage-endpoint', 'http://127.0.0.1:9000'], /--remote-storage-endpoint needs --remote-storage/],
    [['--wal-keep-size', 'lots'], /--wal-keep-size: invalid size "lots"/],
    [['--wal-keep-time', '5 minutes'], /--wal-keep-time: invalid duration/],
    [['--max-timeline-disk-usage', '-1'], /--max-timeline-disk-usage: invalid size/],
    [['--archive-uploads', '0'], /--archive-uploads: invalid count "0"/],
    [['--archive-verify-interval', '0'], /--archive-verify-interval: the duration must be more than 0/],
  ];
  for (const [argv, re] of cases) {
    let err: unknown = null;
    try {
      parseRunArgs(argv);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof UsageError, `${argv.join(' ')}: a usage error`);
    t.match((err as Error)?.message, re);
  }
  t.end();
});

t.test('the CLI: one readable line, exit 2', async (t) => {
  const r = await runCli(['run', '-D', tempDir(t, 'wk-flags-'), '--archive-uploads', 'many']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--archive-uploads: invalid count "many"/);
  t.equal(r.stderr.trim().split('\n').length, 1);
});
