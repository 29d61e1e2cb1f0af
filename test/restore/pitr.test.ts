// Point-in-time recovery with real PostgreSQL 15 through
// `restore_command = 'walkeeper restore-wal %f %p ...'`: the archive is
// filled from the primary's pg_wal exactly as the uploader stores it, and a
// base backup taken before the load is recovered to the xid of a
// transaction in the middle of it. The recovered cluster holds exactly the
// transactions committed up to and including that one (the default
// recovery_target_inclusive). Against a directory archive and s3rver.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FsRemoteStorage } from '../../src/archive/fs-storage.js';
import { openRemoteStorage } from '../../src/archive/open.js';
import type { RemoteStorage } from '../../src/archive/remote-storage.js';
import { S3_TEST_CREDENTIALS, S3TestServer } from '../../support/s3-server.js';
import { letPgReach } from '../../support/pg-proc.js';
import { BIN } from '../daemon/helpers.js';
import { chownToPg, pgTempDir } from '../helpers/pg.js';
import { fillArchiveFromDir } from './fill-archive.js';
import { copyBackup, preparePitr, recoverTo, type PitrSource } from './pitr-scenario.js';

Object.assign(process.env, S3_TEST_CREDENTIALS);

const TENANT = '0123456789abcdef0123456789abcdef';
const TIMELINE = 'fedcba9876543210fedcba9876543210';
const TARGET = 13;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

async function recoverAndCheck(t: Test, src: PitrSource, archiveArgs: string[]): Promise<void> {
  const opened = letPgReach([process.execPath, BIN]);
  if (opened.length > 0) t.comment(`let the PostgreSQL user traverse ${opened.join(', ')} (restore_command runs as that user)`);
  const target = src.transactions[TARGET - 1];
  const command = [process.execPath, BIN, 'restore-wal', '%f', '%p', ...archiveArgs, '--tenant', TENANT, '--timeline', TIMELINE].map((a) => (a.startsWith('%') ? a : quote(a))).join(' ');
  const { cluster } = await recoverTo(t, copyBackup(src), command, target.xid);
  const ids = (await cluster.sql('select string_agg(id::text, \',\' order by id) from marks')).split(',').map(Number);
  t.same(ids, Array.from({ length: TARGET }, (_, i) => i + 1), `exactly transactions 1..${TARGET} (xid ${target.xid}) are there`);
  const xids = (await cluster.sql('select string_agg(xid::text, \',\' order by id) from marks')).split(',');
  t.same(xids, src.transactions.slice(0, TARGET).map((x) => x.xid), 'with the xids recorded during the load');
  t.equal(await cluster.sql('select count(*) from filler'), String(TARGET * 2000), 'and their filler rows');
  t.equal(await cluster.sql('select timeline_id from pg_control_checkpoint()'), '2', 'promoted onto timeline 2 (00000002.history was probed and found missing)');
  await cluster.remove();
}

async function archiveInto(storage: RemoteStorage, src: PitrSource): Promise<void> {
  const last = src.segments.at(-1)!;
  // The segment after the last complete one is still being written: not archived, as by the uploader.
  const stored = await fillArchiveFromDir(storage, src.walDir, { tenantId: TENANT, timelineId: TIMELINE, before: `${last}~` });
  if (!stored.includes(last)) throw new Error(`archive is missing ${last}`);
}

t.test('point-in-time recovery through restore-wal', async (t) => {
  const src = await preparePitr(t, { transactions: 24, fillerRows: 2000, walSegSizeMb: 1 });
  t.ok(src.segments.length >= 3, `the load spans ${src.segments.length} segments`);

  t.test('from a directory archive', async (t) => {
    const dir = pgTempDir('wk-pitr-archive-');
    const storage = new FsRemoteStorage(join(dir, 'archive'));
    await archiveInto(storage, src);
    chownToPg(dir);
    await recoverAndCheck(t, src, ['--remote-storage', `file://${join(dir, 'archive')}`]);
  });

  t.test('from S3 (s3rver)', async (t) => {
    const s3 = await S3TestServer.start();
    t.teardown(() => s3.close());
    const url = `s3://${s3.bucket}/wal`;
    const storage = await openRemoteStorage({ url, endpoint: s3.endpoint });
    t.teardown(() => storage.close());
    await archiveInto(storage, src);
    await recoverAndCheck(t, src, ['--remote-storage', url, '--remote-storage-endpoint', s3.endpoint]);
  });
});
