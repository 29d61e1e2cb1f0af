import t from 'tap';
import { startCluster } from './pg.js';

t.test('a throwaway PostgreSQL 15 cluster starts, answers SQL and stops', async (t) => {
  const pg = await startCluster(t, { walSegSizeMb: 1 });
  t.equal(await pg.sql('select 40 + 2'), '42');
  t.match(await pg.sql('show server_version'), /^15\./);
  t.equal(await pg.sql('show wal_segment_size'), '1MB');
});
