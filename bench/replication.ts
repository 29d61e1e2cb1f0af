// Streaming WAL out: pg_receivewal --no-sync against the walkeeper daemon
// and against PostgreSQL's own walsender, serving the same WAL in the same
// run. The WAL (about 1 GiB; WK_BENCH_WAL_MB to change it) comes from a
// PostgreSQL 15 primary with 16 MiB segments (pgbench -i, a short pgbench
// run, bulk inserts), made once and cached under the temp directory; the
// primary keeps all of it (wal_keep_size). walkeeper gets it through the
// proposer library: a proposer is elected on a fresh `walkeeper run
// --no-sync` and pushes every segment in 128 KiB requests, then commits it.
// Each timed run is `pg_receivewal -D <empty dir> --no-sync -E <end-1> -n`
// from the first segment to the end, alternating between the servers;
// the rows show the medians of the throughput and of the server's CPU time
// (the daemon's; the postmaster's reaped children, i.e. the walsender).
// The same runs are made over TLS (sslmode=require; both servers with the
// same certificate and key: walkeeper --tls-cert, PostgreSQL ssl = on), and
// plaintext runs say sslmode=disable.
//
// Environment: WK_BENCH_WAL_MB (default 1024), WK_BENCH_REPL_RUNS (timed
// runs per server, default 7), WK_BENCH_REPL_TLS=0 (skip the TLS runs),
// WK_BENCH_CPU_PROF=<dir> (run the daemon with --cpu-prof into that directory).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { formatLsn, segmentFileName, segmentNumber, type Lsn } from '../src/lsn.js';
import { projectRoot } from '../src/hot/wasm.js';
import { chownToPg, freePort, pgBin, pgSpawnOptions, pgTempDir, startCluster, type PgCluster } from '../test/helpers/pg.js';
import { WalFeeder } from '../test/replication-e2e/feeder.js';
import { cpuBetween, snapshotTrees } from './proc-cpu.js';
import { makeCa, makeServerCert, type CertFiles } from '../test/helpers/tls.js';
import { cachedWal, type GeneratedWal } from './generated-wal.js';
import { mbPerSec, median, type BenchRow } from './lib.js';

const SEG = 16 << 20;
const TENANT = 'be0c'.repeat(8);
const TIMELINE = 'feed'.repeat(8);

function log(msg: string): void {
  process.stderr.write(`\n  replication: ${msg}`);
}

type Teardown = () => unknown;

function clusterConf(mb: number): Record<string, string | number> {
  return {
    wal_keep_size: `${Math.max(2048, mb * 2)}MB`,
    max_wal_size: `${Math.max(4096, mb * 4)}MB`,
    checkpoint_timeout: '1h',
    autovacuum: 'off',
  };
}

/** The cached primary: a stopped data directory holding [start, end) in pg_wal. */
async function cachedPrimary(mb: number): Promise<{ dataDir: string; meta: GeneratedWal }> {
  return cachedWal({
    name: `replication-${mb}mb`,
    mb,
    segSize: SEG,
    conf: clusterConf(mb),
    load: async (pg) => {
      // pgbench -i writes about 13 MB of WAL per scale unit.
      await pg.pgbench(['-i', '-q', '-s', String(Math.max(1, Math.floor((mb * 0.8) / 13)))]);
      await pg.sql('checkpoint');
      await pg.pgbench(['-n', '-c', '4', '-j', '2', '-T', String(Math.min(10, Math.max(2, Math.floor(mb / 100))))]);
    },
    log,
  });
}

interface Daemon {
  port: number;
  /** CPU time (user + system) the daemon used so far, in ms. */
  cpuMs(): number;
  stop(): Promise<void>;
}

/**
 * CPU time of a process from /proc (user + system, all threads), in ms;
 * with `reaped`, also that of its children that exited (a PostgreSQL
 * walsender is a child of the postmaster, counted once it exits).
 */
function procCpuMs(pid: number, reaped = false): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').map(Number);
    // Fields 14-17 of stat(5): utime, stime, cutime, cstime, in clock ticks (100 per second).
    return ((f[11] + f[12] + (reaped ? f[13] + f[14] : 0)) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** `node bin/walkeeper.js run --no-sync` on a fresh data directory, serving TLS with `tls` too. */
async function startWalkeeper(dataDir: string, tls: CertFiles): Promise<Daemon> {
  const pgPort = await freePort();
  const httpPort = await freePort();
  const prof = process.env.WK_BENCH_CPU_PROF;
  const nodeArgs = prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [];
  const args = [...nodeArgs, join(projectRoot(), 'bin', 'walkeeper.js'), 'run', '-D', dataDir, '--listen-pg', `127.0.0.1:${pgPort}`, '--listen-http', `127.0.0.1:${httpPort}`, '--no-sync', '--tls-cert', tls.cert, '--tls-key', tls.key];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WALKEEPER_LOG_FORMAT: 'json', WALKEEPER_LOG_LEVEL: 'warn' } });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  // Ready when the pg port accepts a connection.
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`walkeeper exited during start-up: ${err}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect({ host: '127.0.0.1', port: pgPort }, () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`walkeeper did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port: pgPort,
    // The whole tree: bin/walkeeper.js hands itself to Node 24 when started by an older Node.
    cpuMs: () => {
      const t = cpuBetween(new Map(), snapshotTrees([proc.pid!]));
      return (t.userUs + t.sysUs) / 1000;
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** One timed pg_receivewal run from the start segment to `end`; returns milliseconds. */
async function receive(conninfo: string, startSeg: bigint, end: Lsn, check?: (dir: string) => void): Promise<number> {
  const out = pgTempDir('wk-bench-recv-');
  try {
    // A complete (sparse) segment just before the start: pg_receivewal then starts at the next one.
    const fd = openSync(join(out, segmentFileName(1, startSeg - 1n, SEG)), 'w');
    ftruncateSync(fd, SEG);
    closeSync(fd);
    chownToPg(out);
    spawnSync('sync');
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const p = spawn(pgBin('pg_receivewal'), ['-d', conninfo, '-D', out, '--no-sync', '-E', formatLsn(end - 1n), '-n'], pgSpawnOptions({ stdio: ['ignore', 'ignore', 'pipe'] }));
      let err = '';
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.on('error', reject);
      p.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`pg_receivewal exited ${c}: ${err.trim()}`))));
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    check?.(out);
    return ms;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

export async function replicationRows(): Promise<BenchRow[]> {
  const mb = Number(process.env.WK_BENCH_WAL_MB ?? 1024);
  const runs = Number(process.env.WK_BENCH_REPL_RUNS ?? 7);
  const { dataDir, meta } = await cachedPrimary(mb);
  const start = BigInt(meta.start);
  const end = BigInt(meta.end);
  // pg_receivewal is pointed at its start by a complete segment just before it, which
  // must be segment 1 or later (it ignores segment 0), so streaming starts at segment 2 or later.
  const startSeg = segmentNumber(start, SEG) > 2n ? segmentNumber(start, SEG) : 2n;
  const from = startSeg * BigInt(SEG);

  const teardown: Teardown[] = [];
  const wkData = join(tmpdir(), `wk-bench-repl-${process.pid}`);
  rmSync(wkData, { recursive: true, force: true });
  mkdirSync(wkData);
  teardown.push(() => rmSync(wkData, { recursive: true, force: true }));
  const certDir = pgTempDir('wk-bench-tls-');
  teardown.push(() => rmSync(certDir, { recursive: true, force: true }));
  const cert = makeServerCert(certDir, makeCa(certDir));
  chownToPg(cert.key); // PostgreSQL wants its key file its own, mode 0600
  try {
    const wk = await startWalkeeper(wkData, cert);
    teardown.push(() => wk.stop());
    const feeder = await WalFeeder.elect(
      { port: wk.port, tenantId: TENANT, timelineId: TIMELINE, walDir: join(dataDir, 'pg_wal'), systemId: BigInt(meta.systemId), segSize: SEG, pgVersion: meta.pgVersion },
      from,
    );
    const t0 = process.hrtime.bigint();
    await feeder.push(end);
    const pushMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (feeder.commitSent !== end) throw new Error(`push ended with commit_lsn ${formatLsn(feeder.commitSent)}, expected ${formatLsn(end)}`);
    await feeder.close();
    log(`pushed ${formatLsn(from)}..${formatLsn(end)} through the proposer library: ${mbPerSec(Number(end - from), pushMs).toFixed(0)} MB/s`);

    const pg: PgCluster = await startCluster(
      { teardown: (fn) => teardown.push(fn) },
      { dataDir, conf: { ...clusterConf(mb), ssl: 'on', ssl_cert_file: cert.cert, ssl_key_file: cert.key } },
    );
    const wkConn = `host=127.0.0.1 port=${wk.port} user=postgres options='-c ztimelineid=${TIMELINE} -c ztenantid=${TENANT}' sslmode=disable`;
    const pgConn = `host=127.0.0.1 port=${pg.port} user=postgres sslmode=disable`;

    // First: one run each (not timed), checking that both wrote the same segments, byte for byte.
    const seed = segmentFileName(1, startSeg - 1n, SEG);
    const digest = (dir: string): string =>
      readdirSync(dir)
        .filter((f) => f !== seed)
        .sort()
        .map((f) => `${f}:${createHash('sha1').update(readFileSync(join(dir, f))).digest('hex')}`)
        .join('\n');
    let wkFiles = '';
    let pgFiles = '';
    await receive(wkConn, startSeg, end, (d) => (wkFiles = digest(d)));
    await receive(pgConn, startSeg, end, (d) => (pgFiles = digest(d)));
    if (wkFiles !== pgFiles) throw new Error(`pg_receivewal wrote different segments from walkeeper and from PostgreSQL:\n${wkFiles}\n--\n${pgFiles}`);
    log(`both servers streamed the same ${wkFiles.split('\n').length} segments (sha1 of each file equal)`);

    const streamed = Number(end - from);
    const timed = async (label: string, wkConninfo: string, pgConninfo: string): Promise<BenchRow[]> => {
      const wkMs: number[] = [];
      const pgMs: number[] = [];
      const wkCpu: number[] = [];
      const pgCpu: number[] = [];
      const runWk = async (): Promise<void> => {
        const cpu0 = wk.cpuMs();
        wkMs.push(await receive(wkConninfo, startSeg, end));
        wkCpu.push(wk.cpuMs() - cpu0);
      };
      const runPg = async (): Promise<void> => {
        const cpu0 = procCpuMs(pg.pid, true);
        pgMs.push(await receive(pgConninfo, startSeg, end));
        // The walsender has exited when pg_receivewal has; wait until the postmaster has reaped it.
        await new Promise((r) => setTimeout(r, 200));
        pgCpu.push(procCpuMs(pg.pid, true) - cpu0);
      };
      for (let i = 0; i < runs; i++) {
        // Alternate which server goes first.
        if (i % 2 === 0) {
          await runWk();
          await runPg();
        } else {
          await runPg();
          await runWk();
        }
      }
      const fmt = (ms: number[]): string => {
        const rates = ms.map((m) => mbPerSec(streamed, m)).sort((a, b) => a - b);
        return `${mbPerSec(streamed, median(ms)).toFixed(0)} MB/s (${rates[0].toFixed(0)}-${rates[rates.length - 1].toFixed(0)})`;
      };
      log(`${label}: walkeeper runs (ms): ${wkMs.map((m) => m.toFixed(0)).join(' ')}; walsender runs (ms): ${pgMs.map((m) => m.toFixed(0)).join(' ')}`);
      log(`${label}: server CPU per run (ms): walkeeper ${wkCpu.map((m) => m.toFixed(0)).join(' ')}; PostgreSQL ${pgCpu.map((m) => m.toFixed(0)).join(' ')}`);
      const gib = streamed / (1 << 30);
      return [
        {
          name: `pg_receivewal --no-sync${label === 'plaintext' ? '' : `, ${label}`}, ${(streamed / (1 << 20)).toFixed(0)} MiB WAL, median of ${runs}`,
          subject: 'walkeeper',
          subjectValue: fmt(wkMs),
          baseline: 'PG 15 walsender',
          baselineValue: fmt(pgMs),
          ratio: median(pgMs) / median(wkMs),
        },
        {
          name: 'the same: server CPU per GiB streamed (user + system)',
          subject: 'walkeeper',
          subjectValue: `${(median(wkCpu) / gib).toFixed(0)} ms`,
          baseline: 'PG 15 walsender',
          baselineValue: `${(median(pgCpu) / gib).toFixed(0)} ms`,
          ratio: median(pgCpu) / median(wkCpu),
        },
      ];
    };
    const rows = await timed('plaintext', wkConn, pgConn);
    if (process.env.WK_BENCH_REPL_TLS !== '0') {
      const tls = (conninfo: string): string => conninfo.replace('sslmode=disable', 'sslmode=require');
      rows.push(...(await timed('over TLS (sslmode=require)', tls(wkConn), tls(pgConn))));
    }
    return rows;
  } finally {
    for (const fn of teardown.reverse()) await fn();
    process.stderr.write('\n');
  }
}
