// The archive: what the uploader costs per segment, what restore-wal costs
// per segment, and point-in-time recovery through restore-wal, each against
// a baseline in the same run.
//
//   upload    encodeObject (zstd 1) + RemoteStorage.put of 16 MiB segments,
//             4 at a time (the uploader's default), to a directory archive
//             vs `cp` of the same files, and to s3rver vs a plain SDK
//             PutObject loop of the raw bytes (also 4 at a time)
//   restore   one `walkeeper restore-wal` process per segment (no prefetch)
//             vs one `cp` process per segment
//   PITR      a base backup recovered through all the WAL of a load, with
//             restore_command = restore-wal (prefetch on and off) vs
//             `cp` from a plain directory holding the same segments
//
// The WAL (WK_BENCH_ARCHIVE_SEGMENTS 16 MiB segments, default 48) comes
// from PostgreSQL 15 and is cached under the temp directory.
// WK_BENCH_ARCHIVE=0 skips the group; WK_BENCH_ARCHIVE_RESTORES sets the
// number of timed restore-wal calls (default 8), WK_BENCH_ARCHIVE_ROUNDS
// the PITR rounds (default 3; medians are reported).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { FsRemoteStorage } from '../src/archive/fs-storage.js';
import { encodeObject, objectKey } from '../src/archive/object-format.js';
import { openRemoteStorage } from '../src/archive/open.js';
import type { RemoteStorage } from '../src/archive/remote-storage.js';
import { S3_TEST_CREDENTIALS, S3TestServer } from '../support/s3-server.js';
import { chownToPg, pgTempDir } from '../test/helpers/pg.js';
import { copyBackup, preparePitr, recoverTo, type PitrSource } from '../test/restore/pitr-scenario.js';
import { mbPerSec, type BenchRow } from './lib.js';

const TENANT = '0123456789abcdef0123456789abcdef';
const TIMELINE = 'fedcba9876543210fedcba9876543210';
const SEG_MB = 16;
const BIN = fileURLToPath(new URL('../../bin/walkeeper.js', import.meta.url));

type Teardown = () => unknown;
const log = (s: string) => process.stderr.write(`\n  archive: ${s}`);

/** The PITR source (base backup + WAL of the load), made once and cached. */
async function cachedSource(segments: number): Promise<PitrSource> {
  const cache = join(tmpdir(), 'walkeeper-bench', `archive-${segments}seg`);
  const metaPath = join(cache, 'meta.json');
  if (existsSync(metaPath)) return JSON.parse(readFileSync(metaPath, 'utf8')) as PitrSource;
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  const teardown: Teardown[] = [];
  try {
    log(`making ${segments} segments of WAL with a base backup before them ...`);
    // ~100 bytes of WAL per filler row; 24 transactions.
    const transactions = 24;
    const src = await preparePitr({ teardown: (fn) => teardown.push(fn) }, { transactions, fillerRows: Math.ceil((segments * (SEG_MB << 20)) / 100 / transactions), walSegSizeMb: SEG_MB });
    const walDir = join(cache, 'wal');
    mkdirSync(walDir);
    for (const n of src.segments) execFileSync('cp', [join(src.walDir, n), join(walDir, n)]);
    const backupDir = join(cache, 'backup');
    renameSync(src.backupDir, backupDir);
    const cached: PitrSource = { ...src, walDir, backupDir };
    chownToPg(cache);
    writeFileSync(metaPath, JSON.stringify(cached));
    return cached;
  } finally {
    for (const fn of teardown.reverse()) await fn();
  }
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(0) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`))));
  });
}

/** `parallel` workers over the items. */
async function inParallel<T>(items: readonly T[], parallel: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/** What the uploader does per segment: read, encode, put. */
async function upload(storage: RemoteStorage, src: PitrSource, names: readonly string[]): Promise<void> {
  await inParallel(names, 4, async (n) => {
    const { body, metadata } = await encodeObject(readFileSync(join(src.walDir, n)), 'zstd');
    await storage.put(objectKey(TENANT, TIMELINE, n), body, metadata);
  });
}

const fmt = (v: number, unit: string) => `${v.toFixed(v >= 100 ? 0 : 1)} ${unit}`;

function rateRow(name: string, subject: string, subjectMbS: number, baseline: string, baselineMbS: number): BenchRow {
  return { name, subject, subjectValue: fmt(subjectMbS, 'MB/s'), baseline, baselineValue: fmt(baselineMbS, 'MB/s'), ratio: subjectMbS / baselineMbS };
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export async function archiveRows(): Promise<BenchRow[]> {
  if (process.env.WK_BENCH_ARCHIVE === '0') return [];
  Object.assign(process.env, S3_TEST_CREDENTIALS);
  const segments = Number(process.env.WK_BENCH_ARCHIVE_SEGMENTS ?? 48);
  const restores = Number(process.env.WK_BENCH_ARCHIVE_RESTORES ?? 8);
  const rounds = Number(process.env.WK_BENCH_ARCHIVE_ROUNDS ?? 3);
  const src = await cachedSource(segments);
  const names = src.segments;
  const walBytes = names.length * src.walSegSize;
  const rows: BenchRow[] = [];
  const teardown: Teardown[] = [];
  const work = pgTempDir('wk-bench-archive-');
  teardown.push(() => rmSync(work, { recursive: true, force: true }));
  try {
    // ---- upload ----
    const archiveDir = join(work, 'archive');
    const fsArchive = new FsRemoteStorage(archiveDir);
    const cpDir = join(work, 'cp');
    mkdirSync(cpDir);
    const cpMs = await timed(() => run('cp', [...names.map((n) => join(src.walDir, n)), cpDir]));
    const fsMs = await timed(() => upload(fsArchive, src, names));
    rows.push(rateRow(`archive upload to a directory, ${names.length} x 16 MiB`, 'zstd + put (fsync)', mbPerSec(walBytes, fsMs), 'cp (no fsync)', mbPerSec(walBytes, cpMs)));

    const s3 = await S3TestServer.start();
    teardown.push(() => s3.close());
    const s3Url = `s3://${s3.bucket}/wal`;
    const s3Archive = await openRemoteStorage({ url: s3Url, endpoint: s3.endpoint });
    teardown.push(() => s3Archive.close());
    const sdk = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' });
    teardown.push(() => sdk.destroy());
    const rawMs = await timed(() =>
      inParallel(names, 4, async (n) => {
        const body = readFileSync(join(src.walDir, n));
        await sdk.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `raw/${n}`, Body: body, ContentLength: body.length }));
      }),
    );
    const s3Ms = await timed(() => upload(s3Archive, src, names));
    rows.push(rateRow(`archive upload to s3rver, ${names.length} x 16 MiB`, 'zstd + put', mbPerSec(walBytes, s3Ms), 'SDK PutObject, raw', mbPerSec(walBytes, rawMs)));

    // ---- one restore-wal per segment ----
    const outDir = join(work, 'pg_wal');
    mkdirSync(outDir);
    const sample = names.slice(0, Math.min(restores, names.length));
    const target = join(outDir, 'RECOVERYXLOG');
    const restoreArgs = (n: string, archive: string[]) => [BIN, 'restore-wal', n, target, '--tenant', TENANT, '--timeline', TIMELINE, '--prefetch', '0', ...archive];
    const fsArgs = ['--remote-storage', `file://${archiveDir}`];
    const s3Args = ['--remote-storage', s3Url, '--remote-storage-endpoint', s3.endpoint];
    const perSegment = async (argsOf: (n: string) => [string, string[]]) =>
      (await timed(async () => {
        for (const n of sample) await run(...argsOf(n));
      })) / sample.length;
    const cpEach = await perSegment((n) => ['cp', [join(src.walDir, n), target]]);
    const fsEach = await perSegment((n) => [process.execPath, restoreArgs(n, fsArgs)]);
    const s3Each = await perSegment((n) => [process.execPath, restoreArgs(n, s3Args)]);
    const msRow = (name: string, subject: string, ms: number): BenchRow => ({ name, subject, subjectValue: fmt(ms, 'ms'), baseline: 'cp process', baselineValue: fmt(cpEach, 'ms'), ratio: cpEach / ms });
    rows.push(msRow('restore-wal, one 16 MiB segment (process)', 'directory archive', fsEach));
    rows.push(msRow('restore-wal, one 16 MiB segment (process)', 's3rver', s3Each));

    // ---- point-in-time recovery ----
    chownToPg(work);
    const targetXid = src.transactions.at(-1)!.xid;
    const recover = async (restoreCommand: string): Promise<number> => {
      const tear: Teardown[] = [];
      try {
        const r = await recoverTo({ teardown: (fn) => tear.push(fn) }, copyBackup(src), restoreCommand, targetXid, 900_000);
        return r.ms;
      } finally {
        for (const fn of tear.reverse()) await fn();
      }
    };
    const node = [process.execPath, BIN].map(quote).join(' ');
    const ids = `--tenant ${TENANT} --timeline ${TIMELINE}`;
    const variants: Array<[string, string]> = [
      ['cp', `cp ${quote(src.walDir)}/%f %p`],
      ['restore-wal, directory, prefetch 8', `${node} restore-wal %f %p ${ids} --remote-storage ${quote(`file://${archiveDir}`)}`],
      ['restore-wal, directory, no prefetch', `${node} restore-wal %f %p ${ids} --prefetch 0 --remote-storage ${quote(`file://${archiveDir}`)}`],
      ['restore-wal, s3rver, prefetch 8', `${node} restore-wal %f %p ${ids} --remote-storage ${s3Url} --remote-storage-endpoint ${s3.endpoint}`],
    ];
    // Rounds alternate the variants so that load changes hit them all.
    const times = new Map<string, number[]>(variants.map(([name]) => [name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const [name, command] of variants) {
        log(`PITR round ${round}/${rounds}: ${name} ...`);
        times.get(name)!.push(await recover(command));
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const cpPitr = median(times.get('cp')!);
    for (const [name] of variants.slice(1)) {
      rows.push(rateRow(`PITR replay, ${names.length} x 16 MiB`, name, mbPerSec(walBytes, median(times.get(name)!)), 'cp from a directory', mbPerSec(walBytes, cpPitr)));
    }
    return rows;
  } finally {
    for (const fn of teardown.reverse()) await fn();
  }
}
