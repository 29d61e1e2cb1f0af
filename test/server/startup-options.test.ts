// The 2021 compute names its timeline with one -c and two bare pairs,
// `options='-c ztimelineid=<hex> ztenantid=<hex>'`: a daemon accepts that
// connection and stores the WAL it pushes, and still refuses ids that are
// not 32 hex digits.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { commonPrefix, elect, PushClient, PushError, realWal, startDaemon, storedWal, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';
import { pushWal } from './helpers.js';

const OPTIONS_2021 = `-c ztimelineid=${TIMELINE} ztenantid=${TENANT}`;

t.test("a 2021 compute's start-up options: connects and pushes WAL", async (t) => {
  const wal = await realWal(t);
  const dataDir = tempDir(t);
  const d = await startDaemon(t, { dataDir, noSync: true });
  const c = await PushClient.connect(d.pgPort, { options: OPTIONS_2021 });
  const { nodeId } = await elect(c, wal);
  const end = wal.startLsn + 1024n * 1024n;
  await pushWal(c, wal, nodeId, wal.startLsn, end, wal.startLsn);
  c.close();
  t.ok(existsSync(join(dataDir, TENANT, TIMELINE)), 'the WAL went to the timeline the options named');
  const len = Number(end - wal.startLsn);
  t.equal(commonPrefix(storedWal(dataDir, wal.startLsn, len, wal.segSize), wal.bytes.subarray(0, len)), len, 'stored WAL identical to what was pushed');
  await d.stop();
});

t.test('the 2021 form with an id that is not 32 hex digits is refused as before', async (t) => {
  const d = await startDaemon(t, { dataDir: tempDir(t), noSync: true });
  const err = await PushClient.connect(d.pgPort, { options: `-c ztimelineid=${TIMELINE} ztenantid=xyz` }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof PushError, 'the connection is refused');
  t.same((err as PushError).fields, {
    S: 'FATAL',
    V: 'FATAL',
    C: '22023',
    M: 'invalid tenant id "xyz": expected 32 hex digits',
  });
  await d.stop();
});
