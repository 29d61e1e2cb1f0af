// The uploader against a storage whose writes the test releases one by
// one: uploads run in parallel up to the limit, backup_lsn moves only over
// the contiguous finished prefix (out-of-order completions wait), a failed
// upload is counted and retried after its backoff, and backup_lsn is
// written to the control file no more often than asked.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsRemoteStorage } from '../../src/archive/fs-storage.js';
import type { ObjectMetadata, RemoteStorage } from '../../src/archive/remote-storage.js';
import { RemoteStorageError } from '../../src/archive/remote-storage.js';
import { TimelineUploader } from '../../src/archive/uploader.js';
import { silentLogger } from '../../src/log.js';
import { segmentFileName, type Lsn } from '../../src/lsn.js';
import { newArchiveProgress, type Timeline } from '../../src/timeline/timeline.js';
import { TimelineAncestry } from '../../src/wal/timeline-files.js';
import { tempDir, until } from '../helpers/support.js';

const SEG = 1 << 20;
const MiB = BigInt(SEG);

/** A segment file whose first page header says it starts at `segno` (a whole segment). */
function segmentBytes(segno: bigint): Buffer {
  const b = Buffer.alloc(SEG, Number(segno & 0xffn));
  b.writeUInt16LE(0xd110, 0);
  b.writeBigUInt64LE(segno * MiB, 8);
  return b;
}

interface PendingPut {
  key: string;
  release(fail?: Error): void;
}

/** FsRemoteStorage whose puts wait until the test releases them. */
class GatedStorage implements RemoteStorage {
  readonly description: string;
  readonly pending: PendingPut[] = [];
  maxConcurrent = 0;
  constructor(private readonly inner: FsRemoteStorage) {
    this.description = inner.description;
  }
  put(key: string, body: Buffer, metadata: ObjectMetadata): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        key,
        release: (fail) => (fail ? reject(fail) : this.inner.put(key, body, metadata).then(resolve, reject)),
      });
      this.maxConcurrent = Math.max(this.maxConcurrent, this.pending.length);
    });
  }
  take(name: string): PendingPut {
    const i = this.pending.findIndex((p) => p.key.endsWith(name));
    if (i < 0) throw new Error(`no pending put of ${name}`);
    return this.pending.splice(i, 1)[0];
  }
  head = (key: string) => this.inner.head(key);
  get = (key: string, range?: { start: number; end: number }) => this.inner.get(key, range);
  list = (prefix: string) => this.inner.list(prefix);
  delete = (key: string) => this.inner.delete(key);
  close = () => this.inner.close();
}

/** The part of a Timeline the uploader uses, over a directory of segment files. */
function fakeTimeline(dir: string, segments: bigint[], end: Lsn) {
  for (const s of segments) writeFileSync(join(dir, segmentFileName(1, s, SEG)), segmentBytes(s));
  const tl = {
    key: { tenantId: 'a'.repeat(32), timelineId: 'b'.repeat(32) },
    dir,
    log: silentLogger(),
    walSegSize: SEG,
    ancestry: new TimelineAncestry(1),
    localStartLsn: segments[0] * MiB,
    backupLsn: 0n,
    persistedBackupLsn: 0n,
    persists: [] as Lsn[],
    persistBackupLsn(lsn: Lsn) {
      tl.persists.push(lsn);
      tl.persistedBackupLsn = lsn;
      return true;
    },
    commitLsn: end,
    syncedLsn: end,
    failure: undefined,
    archive: newArchiveProgress('x'),
  };
  return tl;
}

t.test('parallel uploads up to the limit; backup_lsn over the contiguous prefix; a failure retried', async (t) => {
  const dir = tempDir(t, 'wk-upl-');
  const store = new GatedStorage(new FsRemoteStorage(tempDir(t, 'wk-upl-store-')));
  const tl = fakeTimeline(dir, [1n, 2n, 3n, 4n, 5n], 6n * MiB);
  let now = 1_000_000;
  const up = new TimelineUploader({ timeline: tl as unknown as Timeline, storage: store, uploads: 3, verifyIntervalMs: 3_600_000, log: tl.log, now: () => now, persistEveryMs: 1000 });
  up.tick();
  await until('three uploads waiting', () => store.pending.length === 3, 10_000, 10);
  t.equal(store.maxConcurrent, 3, 'no more than --archive-uploads in flight');
  t.equal(tl.backupLsn, 0n, 'backup_lsn 0/0 while nothing is archived');

  // Segment 3 finishes first: backup_lsn must not jump over 1 and 2.
  store.take(segmentFileName(1, 3n, SEG)).release();
  await until('segment 4 handed out in the freed slot', () => store.pending.some((p) => p.key.endsWith(segmentFileName(1, 4n, SEG))), 10_000, 10);
  t.equal(tl.backupLsn, 0n, 'out-of-order completion waits for the prefix');

  // Segment 1 fails (transient): counted, retried after the backoff.
  store.take(segmentFileName(1, 1n, SEG)).release(new RemoteStorageError('connection reset', true));
  await until('the failure counted', () => tl.archive.uploadErrors === 1, 10_000, 10);
  t.match(tl.archive.lastError, /connection reset/);
  store.take(segmentFileName(1, 2n, SEG)).release();
  await until('segment 2 archived', () => tl.archive.segmentsUploaded === 2, 10_000, 10);
  up.tick();
  t.equal(tl.backupLsn, 0n, 'still waiting for segment 1');
  t.notOk(store.pending.some((p) => p.key.endsWith(segmentFileName(1, 1n, SEG))), 'not retried before its backoff');
  t.notOk(store.pending.some((p) => p.key.endsWith(segmentFileName(1, 5n, SEG))), 'nothing new started during the backoff');
  now += 100;
  up.tick();
  await until('segment 1 retried and 5 handed out', () => ['1', '5'].every((n) => store.pending.some((p) => p.key.endsWith(segmentFileName(1, BigInt(n), SEG)))), 10_000, 10);
  store.take(segmentFileName(1, 1n, SEG)).release();
  await until('backup_lsn over 1..3', () => tl.backupLsn === 4n * MiB, 10_000, 10);
  store.take(segmentFileName(1, 4n, SEG)).release();
  store.take(segmentFileName(1, 5n, SEG)).release();
  await until('backup_lsn over 1..5', () => tl.backupLsn === 6n * MiB, 10_000, 10);
  t.equal(tl.archive.segmentsUploaded, 5);

  // Persisted at most once per persistEveryMs, and at stop.
  t.same(tl.persists, [4n * MiB], 'written when the prefix first moved; not again within a second');
  now += 1000;
  up.tick();
  t.same(tl.persists, [4n * MiB, 6n * MiB], 'one write covers segments 4 and 5');
  await up.stop();
  t.same(tl.persists, [4n * MiB, 6n * MiB], 'nothing new to write at stop');
});

t.test('a timeline that began mid-segment starts its archive at the first whole segment', async (t) => {
  const dir = tempDir(t, 'wk-upl-mid-');
  const store = new FsRemoteStorage(tempDir(t, 'wk-upl-mid-store-'));
  const tl = fakeTimeline(dir, [2n, 3n], 4n * MiB);
  // Segment 2 began mid-way: its first page is zeros here.
  writeFileSync(join(dir, segmentFileName(1, 2n, SEG)), Buffer.alloc(SEG));
  const up = new TimelineUploader({ timeline: tl as unknown as Timeline, storage: store, uploads: 2, verifyIntervalMs: 3_600_000, log: tl.log });
  up.tick();
  await until('segment 3 archived', () => tl.backupLsn === 4n * MiB, 10_000, 10);
  t.equal(tl.archive.startLsn, 3n * MiB, 'the status says where the archive starts');
  t.equal(tl.archive.segmentsUploaded, 1);
  t.same((await store.list('')).map((k) => k.split('/').pop()), [segmentFileName(1, 3n, SEG)], 'the zero-headed segment is not archived');
  await up.stop();
});
