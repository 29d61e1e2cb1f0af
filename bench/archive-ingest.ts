// Does the archive keep up with ingest? WAL from a PostgreSQL 15 primary
// (16 MiB segments; pgbench -i, a pgbench run, bulk inserts; about 512 MiB,
// WK_BENCH_ARCHIVE_MB to change it; made once and cached under the temp
// directory) is pushed at full speed through the proposer library into a
// fresh `walkeeper run --no-sync` that archives to a directory (file://)
// and, in a second run, to s3rver. While it pushes, the daemon's status is
// sampled: archive lag = commit_lsn - backup_lsn, in segments. The row
// compares MB/s archived (bytes / time until backup_lsn reached the end)
// with MB/s ingested (bytes / push time); the name carries the lag figures
// (max during the push, at the end of the push) and the drain time.
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn, parseLsn } from '../src/lsn.js';
import { S3_TEST_CREDENTIALS, S3TestServer } from '../support/s3-server.js';
import { freePort } from '../test/helpers/pg.js';
import { WalFeeder } from '../test/replication-e2e/feeder.js';
import { mbPerSec, type BenchRow } from './lib.js';
import { cachedWal, type GeneratedWal } from './generated-wal.js';
import { startSafekeeper } from './pg-local.js';

const SEG = 16 << 20;
const TENANT = 'a2c1'.repeat(8);
const TIMELINE = '1a9e'.repeat(8);
/** Pushed in slices this big, so the push runs while the sampler reads the status. */
const SLICE = 4 * SEG;

// The daemons talk to s3rver with its fixed key pair.
Object.assign(process.env, S3_TEST_CREDENTIALS);

function log(msg: string): void {
  process.stderr.write(`\n  archive-ingest: ${msg}`);
}

/** The cached primary's pg_wal holding [start, end). */
async function cachedPrimaryWal(mb: number): Promise<{ walDir: string; meta: GeneratedWal }> {
  const { dataDir, meta } = await cachedWal({
    name: `archive-ingest-${mb}mb`,
    mb,
    segSize: SEG,
    conf: { wal_keep_size: `${mb * 2}MB`, max_wal_size: `${mb * 4}MB`, checkpoint_timeout: '1h', autovacuum: 'off' },
    keep: true,
    load: async (pg) => {
      await pg.pgbench(['-i', '-q', '-s', String(Math.max(1, Math.floor((mb * 0.5) / 13)))]);
      await pg.pgbench(['-n', '-c', '4', '-j', '2', '-T', '5']);
    },
    log,
  });
  return { walDir: join(dataDir, 'pg_wal'), meta };
}

interface Daemon {
  pgPort: number;
  status(): Promise<{ commit_lsn: string; backup_lsn: string }>;
  stop(): Promise<void>;
}

/** `walkeeper run --no-sync` with the archive flags (credentials from the S3 test server's, set above). */
async function startWalkeeper(dataDir: string, archiveArgs: string[]): Promise<Daemon> {
  const pgPort = await freePort();
  const httpPort = await freePort();
  const proc = await startSafekeeper(dataDir, pgPort, httpPort, ['--no-sync', ...archiveArgs]);
  return {
    pgPort,
    async status() {
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1/tenant/${TENANT}/timeline/${TIMELINE}`);
      if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
      return (await res.json()) as { commit_lsn: string; backup_lsn: string };
    },
    stop: () => proc.stop(),
  };
}

interface IngestResult {
  bytes: number;
  pushMs: number;
  archivedMs: number;
  maxLagSegs: number;
  lagAtPushEndSegs: number;
}

async function ingest(walDir: string, meta: GeneratedWal, archiveArgs: string[]): Promise<IngestResult> {
  const start = BigInt(meta.start);
  const end = BigInt(meta.end);
  const dataDir = join(tmpdir(), `wk-bench-archive-${process.pid}`);
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir);
  const wk = await startWalkeeper(dataDir, archiveArgs);
  try {
    const feeder = await WalFeeder.elect(
      { port: wk.pgPort, tenantId: TENANT, timelineId: TIMELINE, walDir, systemId: BigInt(meta.systemId), segSize: SEG, pgVersion: meta.pgVersion },
      start,
    );
    const lagSegs = async (): Promise<number> => {
      const s = await wk.status();
      return Number(parseLsn(s.commit_lsn) - parseLsn(s.backup_lsn)) / SEG;
    };
    let maxLag = 0;
    let sampling = true;
    const series: string[] = [];
    const t0 = process.hrtime.bigint();
    const elapsed = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
    const sampler = (async () => {
      while (sampling) {
        const lag = await lagSegs().catch(() => 0);
        maxLag = Math.max(maxLag, lag);
        series.push(`${(elapsed() / 1000).toFixed(1)}s:${lag.toFixed(1)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    for (let to = start + BigInt(SLICE); ; to += BigInt(SLICE)) {
      await feeder.push(to < end ? to : end);
      if (to >= end) break;
    }
    // push() ends with a heartbeat: the daemon has the final commit position.
    const pushMs = elapsed();
    const lagAtPushEnd = await lagSegs();
    for (;;) {
      const s = await wk.status();
      if (parseLsn(s.backup_lsn) >= end) break;
      if (elapsed() > pushMs + 300_000) throw new Error(`the archive did not reach ${formatLsn(end)} within 5 minutes of the push (backup_lsn ${s.backup_lsn})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const archivedMs = elapsed();
    sampling = false;
    await sampler;
    await feeder.close();
    log(`lag over time (segments): ${series.join(' ')}`);
    return { bytes: Number(end - start), pushMs, archivedMs, maxLagSegs: maxLag, lagAtPushEndSegs: lagAtPushEnd };
  } finally {
    await wk.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function row(backend: string, r: IngestResult): BenchRow {
  const ingested = mbPerSec(r.bytes, r.pushMs);
  const archived = mbPerSec(r.bytes, r.archivedMs);
  log(
    `${backend}: ${(r.bytes / 1e6).toFixed(0)} MB ingested at ${ingested.toFixed(0)} MB/s, archived at ${archived.toFixed(0)} MB/s; ` +
      `lag max ${r.maxLagSegs.toFixed(1)} segments, ${r.lagAtPushEndSegs.toFixed(1)} at the end of the push, drained ${((r.archivedMs - r.pushMs) / 1000).toFixed(1)} s later`,
  );
  return {
    name: `archive ingest, ${backend} (lag max ${r.maxLagSegs.toFixed(0)} / end ${r.lagAtPushEndSegs.toFixed(0)} seg of 16 MiB)`,
    subject: 'archived',
    subjectValue: `${archived.toFixed(0)} MB/s`,
    baseline: 'ingested',
    baselineValue: `${ingested.toFixed(0)} MB/s`,
    ratio: archived / ingested,
  };
}

export async function archiveIngestRows(): Promise<BenchRow[]> {
  if (process.env.WK_BENCH_ARCHIVE === '0') return [];
  const mb = Number(process.env.WK_BENCH_ARCHIVE_MB ?? 512);
  const { walDir, meta } = await cachedPrimaryWal(mb);
  const rows: BenchRow[] = [];

  const dir = join(tmpdir(), `wk-bench-archive-dir-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  try {
    rows.push(row('file://', await ingest(walDir, meta, ['--remote-storage', `file://${dir}`])));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const s3 = await S3TestServer.start('walkeeper-bench');
  try {
    rows.push(row('s3rver', await ingest(walDir, meta, ['--remote-storage', 's3://walkeeper-bench/wal', '--remote-storage-endpoint', s3.endpoint])));
  } finally {
    await s3.close();
  }
  return rows;
}
