// `walkeeper restore-wal` exit codes, run as PostgreSQL runs it: 0 only for
// a delivered, verified file; 1 only when every source says the file does
// not exist; > 125 (130 unavailable, 131 corrupt) for anything doubtful, so
// PostgreSQL aborts recovery instead of ending it early. %p is written only
// on success, and nothing else is left in its directory.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FsRemoteStorage } from '../../src/archive/fs-storage.js';
import { encodeObject, objectKey } from '../../src/archive/object-format.js';
import { openRemoteStorage } from '../../src/archive/open.js';
import { EXIT_CORRUPT, EXIT_UNAVAILABLE } from '../../src/commands/restore-wal.js';
import { segmentFileName } from '../../src/lsn.js';
import { S3_TEST_CREDENTIALS, S3TestServer } from '../../support/s3-server.js';
import { realWal, runCli, tempDir } from '../daemon/helpers.js';
import { freePort } from '../helpers/pg.js';
import { until } from '../helpers/support.js';
import { putFile } from './fill-archive.js';

Object.assign(process.env, S3_TEST_CREDENTIALS);

const TENANT = '0123456789abcdef0123456789abcdef';
const TIMELINE = 'fedcba9876543210fedcba9876543210';
const IDS = { tenantId: TENANT, timelineId: TIMELINE };
const HISTORY = '00000002.history';
const HISTORY_TEXT = Buffer.from('1\t0/3000000\tno recovery target specified\n');

t.test('restore-wal exit codes', async (t) => {
  const wal = await realWal(t);
  const seg = (i: number) => ({
    name: segmentFileName(1, wal.startLsn / BigInt(wal.segSize) + BigInt(i), wal.segSize),
    bytes: wal.bytes.subarray(i * wal.segSize, (i + 1) * wal.segSize),
  });
  const dir = tempDir(t, 'wk-restore-');
  const archiveDir = join(dir, 'archive');
  const archive = new FsRemoteStorage(archiveDir);
  for (let i = 0; i < 3; i++) await putFile(archive, seg(i).name, seg(i).bytes, IDS);
  await putFile(archive, HISTORY, HISTORY_TEXT, IDS);

  let n = 0;
  /** Run restore-wal into a fresh directory; returns the exit code, stderr and what the directory holds. */
  const restore = async (name: string, extra: string[], opts: { ids?: boolean } = {}) => {
    const out = join(dir, `pg_wal-${++n}`);
    mkdirSync(out);
    const target = join(out, 'RECOVERYXLOG');
    const ids = opts.ids === false ? [] : ['--tenant', TENANT, '--timeline', TIMELINE];
    const r = await runCli(['restore-wal', name, target, ...ids, '--prefetch', '0', ...extra], { timeoutMs: 60_000 });
    const files = readdirSync(out);
    return { ...r, files, bytes: existsSync(target) ? readFileSync(target) : null };
  };
  const fileArchive = ['--remote-storage', `file://${archiveDir}`];

  t.test('a segment and a history file are delivered exactly', async (t) => {
    const r = await restore(seg(1).name, fileArchive);
    t.equal(r.code, 0, r.stderr);
    t.ok(r.bytes?.equals(seg(1).bytes), 'the segment bytes are identical');
    t.same(r.files, ['RECOVERYXLOG'], 'nothing else is left in the directory');
    const h = await restore(HISTORY, fileArchive);
    t.equal(h.code, 0, h.stderr);
    t.ok(h.bytes?.equals(HISTORY_TEXT), 'the history file is identical');
  });

  t.test('prefetch: the next segments are spooled, verified, and only ever served for their timeline', async (t) => {
    const out = join(dir, 'pg_wal-prefetch');
    mkdirSync(out);
    const target = join(out, 'RECOVERYXLOG');
    const spool = join(out, '.walkeeper-prefetch', `${TENANT}-${TIMELINE}`);
    const stray = join(out, '.walkeeper-prefetch', `${TENANT}-${'ab'.repeat(16)}`);
    mkdirSync(stray, { recursive: true });
    // A good segment 5 in another timeline's spool; this timeline's archive has no segment 5.
    writeFileSync(join(stray, seg(5).name), seg(5).bytes);
    const run = (name: string, timeline = TIMELINE) =>
      runCli(['restore-wal', name, target, '--tenant', TENANT, '--timeline', timeline, '--prefetch', '2', ...fileArchive], { timeoutMs: 60_000 });

    const other = await run(seg(5).name);
    t.equal(other.code, 1, "another timeline's spooled segment is not served");
    t.notOk(existsSync(target));

    const first = await run(seg(0).name);
    t.equal(first.code, 0, first.stderr);
    t.notOk(existsSync(stray), "other timelines' spools are removed");
    await until('the worker spools segments 1 and 2', () => existsSync(join(spool, seg(1).name)) && existsSync(join(spool, seg(2).name)), 30_000, 50);
    await until('both are complete', () => !readdirSync(spool).some((n) => n.includes('.tmp-')), 30_000, 50);
    t.ok(readFileSync(join(spool, seg(1).name)).equals(seg(1).bytes), 'the spooled segment is the archived one');

    // Damage the spooled copy of segment 2 (wrong first page): it must be dropped and fetched again.
    const damaged = Buffer.from(seg(1).bytes);
    writeFileSync(join(spool, seg(2).name), damaged);

    const second = await run(seg(1).name);
    t.equal(second.code, 0, second.stderr);
    t.ok(readFileSync(target).equals(seg(1).bytes), 'segment 1 served from the spool');
    t.notOk(existsSync(join(spool, seg(1).name)), 'the spool file was moved, not copied');

    const third = await run(seg(2).name);
    t.equal(third.code, 0, third.stderr);
    t.ok(readFileSync(target).equals(seg(2).bytes), 'a spool file that does not check out is ignored: segment 2 fetched again');
    t.ok(readdirSync(spool).filter((n) => /^[0-9A-F]{24}$/.test(n)).length <= 2, 'the spool holds at most --prefetch segments');
    // Nobody asks for more: the worker gives up after 10 s and empties the spool.
    await until('no worker left', () => !existsSync(join(spool, 'worker.pid')), 30_000, 50);
    t.same(readdirSync(spool).filter((n) => /^[0-9A-F]{24}/.test(n)), [], 'no segment is left in the spool once PostgreSQL stops asking');
    t.same(
      readdirSync(out).filter((n) => n !== '.walkeeper-prefetch'),
      ['RECOVERYXLOG'],
      'nothing else next to %p',
    );
  });

  t.test('a worker that is not asked for more empties the spool', async (t) => {
    const out = join(dir, 'pg_wal-idle');
    mkdirSync(out);
    const spool = join(out, '.walkeeper-prefetch', `${TENANT}-${TIMELINE}`);
    const r = await runCli(['restore-wal', seg(0).name, join(out, 'RECOVERYXLOG'), '--tenant', TENANT, '--timeline', TIMELINE, '--prefetch', '1', ...fileArchive], { timeoutMs: 60_000 });
    t.equal(r.code, 0, r.stderr);
    await until('segment 1 is spooled', () => existsSync(join(spool, seg(1).name)), 30_000, 50);
    await until('the worker exits', () => !existsSync(join(spool, 'worker.pid')), 30_000, 50);
    t.same(readdirSync(spool).filter((n) => /^[0-9A-F]{24}/.test(n)), [], 'no segment left behind in pg_wal');
  });

  t.test('a spool that cannot be used costs only speed', async (t) => {
    const out = join(dir, 'pg_wal-no-spool');
    mkdirSync(out);
    writeFileSync(join(out, '.walkeeper-prefetch'), 'not a directory');
    const target = join(out, 'RECOVERYXLOG');
    const r = await runCli(['restore-wal', seg(1).name, target, '--tenant', TENANT, '--timeline', TIMELINE, '--prefetch', '2', ...fileArchive], { timeoutMs: 60_000 });
    t.equal(r.code, 0, r.stderr);
    t.ok(readFileSync(target).equals(seg(1).bytes), 'delivered all the same');
  });

  t.test('a file that does not exist: 1, one line, nothing written', async (t) => {
    for (const name of [seg(5).name, '00000003.history']) {
      const r = await restore(name, fileArchive);
      t.equal(r.code, 1, `${name}: exit 1`);
      t.match(r.stderr, new RegExp(`^walkeeper restore-wal: ${name.replace('.', '\\.')} not found \\(asked: archive file://`), 'one readable line');
      t.equal(r.stderr.trim().split('\n').length, 1, 'exactly one line');
      t.same(r.files, [], 'nothing written');
    }
    const other = await restore(seg(1).name, ['--remote-storage', `file://${archiveDir}`, '--tenant', TENANT, '--timeline', 'ab'.repeat(16)], { ids: false });
    t.equal(other.code, 1, 'another timeline of the same archive does not have it');
    const partial = await restore(`${seg(1).name}.partial`, fileArchive);
    t.equal(partial.code, 1, 'a .partial name is never served');
    t.same(partial.files, []);
  });

  t.test('corrupt objects: > 125, nothing written', async (t) => {
    // A flipped byte in the stored body.
    const flipped = seg(0).name;
    const bodyPath = join(archiveDir, TENANT, TIMELINE, flipped);
    const body = readFileSync(bodyPath);
    body[Math.floor(body.length / 2)] ^= 0x40;
    writeFileSync(bodyPath, body);
    // Metadata that describes other bytes: a good body, the size and checksum of something else.
    const wrongMeta = segmentFileName(1, 100n, wal.segSize);
    const good = await encodeObject(seg(2).bytes, 'identity');
    await archive.put(objectKey(TENANT, TIMELINE, wrongMeta), good.body, { ...good.metadata, 'walkeeper-size': String(wal.segSize - 1) });
    // A good object stored under another segment's name: checksum fine, page header wrong.
    const misnamed = segmentFileName(1, 101n, wal.segSize);
    await putFile(archive, misnamed, seg(2).bytes, IDS);
    // A history file that does not parse.
    await putFile(archive, '00000009.history', Buffer.from('this is not a history file\n'), IDS);
    for (const name of [flipped, wrongMeta, misnamed, '00000009.history']) {
      const r = await restore(name, fileArchive);
      t.equal(r.code, EXIT_CORRUPT, `${name}: exit ${EXIT_CORRUPT} (${r.stderr.trim()})`);
      t.ok(r.code! > 125, 'PostgreSQL treats it as fatal');
      t.same(r.files, [], 'nothing written');
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line on stderr');
    }
  });

  t.test('a safekeeper with nothing listening: > 125, also when the archive does not have the file', async (t) => {
    const port = await freePort();
    const alone = await restore(seg(1).name, ['--safekeepers', `127.0.0.1:${port}`]);
    t.equal(alone.code, EXIT_UNAVAILABLE, alone.stderr);
    t.match(alone.stderr, /after 3 tries.*ECONNREFUSED/);
    t.same(alone.files, []);
    const notArchived = await restore(seg(6).name, [...fileArchive, '--safekeepers', `127.0.0.1:${port}`]);
    t.equal(notArchived.code, EXIT_UNAVAILABLE, 'the archive saying "no" is not enough while a safekeeper could not be asked');
    const archived = await restore(seg(1).name, [...fileArchive, '--safekeepers', `127.0.0.1:${port}`]);
    t.equal(archived.code, 0, 'the archive has it: the safekeeper is not needed');
  });

  t.test('bad usage: exit 129 (recovery stops) and one line', async (t) => {
    const r = await restore(seg(1).name, fileArchive, { ids: false });
    t.equal(r.code, 129);
    t.match(r.stderr, /^walkeeper restore-wal: .*--tenant/);
    const bad = await restore(seg(1).name, ['--tenant', TENANT, '--timeline', TIMELINE], { ids: false });
    t.equal(bad.code, 129, 'no source given');
  });

  t.test('S3: delivered, missing, server down, back up', async (t) => {
    const s3 = await S3TestServer.start();
    t.teardown(() => s3.close());
    const url = `s3://${s3.bucket}/wal`;
    const storage = await openRemoteStorage({ url, endpoint: s3.endpoint });
    t.teardown(() => storage.close());
    await putFile(storage, seg(1).name, seg(1).bytes, IDS);
    const args = ['--remote-storage', url, '--remote-storage-endpoint', s3.endpoint];
    const ok = await restore(seg(1).name, args);
    t.equal(ok.code, 0, ok.stderr);
    t.ok(ok.bytes?.equals(seg(1).bytes));
    const missing = await restore(seg(2).name, args);
    t.equal(missing.code, 1, missing.stderr);
    const history = await restore('00000002.history', args);
    t.equal(history.code, 1, 'a missing history file: 1');
    await s3.kill();
    const down = await restore(seg(1).name, args);
    t.equal(down.code, EXIT_UNAVAILABLE, down.stderr);
    t.same(down.files, [], 'nothing written while the archive is down');
    await s3.resume();
    const back = await restore(seg(1).name, args);
    t.equal(back.code, 0, back.stderr);
  });
});
