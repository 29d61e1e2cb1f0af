// The two archive backends keep one contract: the directory backend and the
// S3 backend against a real S3-protocol server (s3rver) on loopback.
import t, { type Test } from 'tap';
import { decodeObject, encodeObject, objectKey, ObjectFormatError } from '../../src/archive/object-format.js';
import { FsRemoteStorage } from '../../src/archive/fs-storage.js';
import { ArchiveLocationError, parseArchiveLocation } from '../../src/archive/location.js';
import { openRemoteStorage } from '../../src/archive/open.js';
import { RemoteStorageError, type RemoteStorage } from '../../src/archive/remote-storage.js';
import { S3RemoteStorage } from '../../src/archive/s3-storage.js';
import { S3_TEST_CREDENTIALS, S3TestServer } from '../../support/s3-server.js';
import { mulberry32, tempDir } from '../helpers/support.js';

Object.assign(process.env, S3_TEST_CREDENTIALS);

const TENANT = '0123456789abcdef0123456789abcdef';
const TIMELINE = 'fedcba9876543210fedcba9876543210';

function segmentLike(seed: number, size: number): Buffer {
  // WAL-like: runs of zeros between random records, so zstd has work to do.
  const rnd = mulberry32(seed);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 512) {
    const n = Math.floor(rnd() * 256);
    for (let j = 0; j < n && i + j < size; j++) b[i + j] = Math.floor(rnd() * 256);
  }
  return b;
}

async function contract(t: Test, store: RemoteStorage): Promise<void> {
  const key = objectKey(TENANT, TIMELINE, '000000010000000000000001');
  t.equal(await store.head(key), null, 'a missing object: head is null');
  t.equal(await store.get(key), null, 'a missing object: get is null');
  await store.delete(key);
  t.pass('deleting a missing object is not an error');

  const file = segmentLike(1, 1 << 20);
  for (const encoding of ['zstd', 'identity'] as const) {
    const { body, metadata } = await encodeObject(file, encoding);
    await store.put(key, body, metadata);
    const info = await store.head(key);
    t.equal(info?.size, body.length, `${encoding}: head gives the stored size`);
    t.same(info?.metadata, metadata, `${encoding}: head gives the metadata back`);
    const got = await store.get(key);
    t.ok(got && (await decodeObject(key, got, info!.metadata)).equals(file), `${encoding}: the file round-trips`);
  }
  const identity = await encodeObject(file, 'identity');
  await store.put(key, identity.body, identity.metadata);
  const part = await store.get(key, { start: 1000, end: 9192 });
  t.ok(part?.equals(file.subarray(1000, 9192)), 'a ranged get returns exactly that range');

  const other = objectKey(TENANT, TIMELINE, '000000010000000000000002');
  await store.put(other, Buffer.from('x'), { 'walkeeper-encoding': 'identity' });
  await store.put(objectKey(TENANT, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '000000010000000000000001'), Buffer.from('y'), {});
  t.same(await store.list(`${TENANT}/${TIMELINE}/`), [key, other], 'list gives the keys under a prefix, in order');
  await store.delete(other);
  t.same(await store.list(`${TENANT}/${TIMELINE}/`), [key], 'a deleted object is gone from the listing');
}

t.test('directory backend', async (t) => {
  const dir = tempDir(t, 'wk-archive-');
  await contract(t, new FsRemoteStorage(dir));
  await t.rejects(new FsRemoteStorage(dir).put('../escape', Buffer.alloc(1), {}), RemoteStorageError, 'a key leaving the directory is refused');
  await t.rejects(new FsRemoteStorage(dir).put('a/../../escape', Buffer.alloc(1), {}), RemoteStorageError, 'path-like keys are refused');
});

t.test('S3 backend against s3rver', async (t) => {
  const server = await S3TestServer.start();
  t.teardown(() => server.close());
  const store = new S3RemoteStorage({ bucket: server.bucket, prefix: 'wal/archive', endpoint: server.endpoint });
  t.teardown(() => store.close());
  await contract(t, store);

  const unreachable = new S3RemoteStorage({ bucket: server.bucket, prefix: '', endpoint: server.endpoint, maxAttempts: 1 });
  t.teardown(() => unreachable.close());
  await server.kill();
  const err = await unreachable.head('x').then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof RemoteStorageError && err.transient, 'an unreachable server is a transient RemoteStorageError');
  await server.resume();
  t.equal(await unreachable.head('x'), null, 'after a restart the server answers again');
});

t.test('decodeObject checks what it returns', async (t) => {
  const file = segmentLike(2, 64 * 1024);
  const { body, metadata } = await encodeObject(file, 'zstd');
  const flipped = Buffer.from(body);
  flipped[flipped.length >> 1] ^= 0xff;
  await t.rejects(decodeObject('k', flipped, metadata), ObjectFormatError, 'a corrupted body is refused');
  await t.rejects(decodeObject('k', body, { ...metadata, 'walkeeper-sha256': '0'.repeat(64) }), ObjectFormatError, 'a checksum mismatch is refused');
  await t.rejects(decodeObject('k', body, { ...metadata, 'walkeeper-encoding': 'lz4' }), ObjectFormatError, 'an unknown encoding is refused');
  await t.rejects(decodeObject('k', body, {}), ObjectFormatError, 'an object without our metadata is refused');
});

t.test('archive locations', async (t) => {
  t.same(parseArchiveLocation('s3://my-bucket'), { kind: 's3', bucket: 'my-bucket', prefix: '' });
  t.same(parseArchiveLocation('s3://my-bucket/a/b/'), { kind: 's3', bucket: 'my-bucket', prefix: 'a/b' });
  t.same(parseArchiveLocation('file:///var/lib/wal-archive/'), { kind: 'file', dir: '/var/lib/wal-archive' });
  for (const bad of ['/var/archive', 'file://host/dir', 'file:///', 's3://Bad_Bucket', 's3://b/../x', 'http://x/y', 's3://key:secret@bucket', 'nonsense']) {
    t.throws(() => parseArchiveLocation(bad), ArchiveLocationError, `refused: ${bad}`);
  }
  await t.rejects(openRemoteStorage({ url: 'file:///tmp/x', endpoint: 'http://127.0.0.1:1' }), ArchiveLocationError, 'an endpoint with a file archive is refused');
  await t.rejects(openRemoteStorage({ url: 's3://bucket', endpoint: 'not a url' }), ArchiveLocationError, 'a bad endpoint is refused');
});
