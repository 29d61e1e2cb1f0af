// End-of-WAL benchmark on one full 16 MiB segment of real pgbench WAL:
// the wasm scanner against its TS twin (in memory), and walkeeper against
// pg_waldump -q on the same file. The segment is made once by a throwaway
// PostgreSQL 15 cluster and cached under the temp dir.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn, parseLsn, parseSegmentFileName, segmentFileName, segmentNumber, segmentStart } from '../src/lsn.js';
import { WasmBuffer, projectRoot } from '../src/hot/wasm.js';
import { WasmWalScanner, type ScannerOptions } from '../src/hot/xlog.js';
import { TsWalScanner } from '../src/hot/xlog-ts.js';
import { findWalEnd } from '../src/wal/wal-end.js';
import { chownToPg, runPg, startCluster } from '../test/helpers/pg.js';
import { mbPerSec, measure, type BenchRow } from './lib.js';

const SEG = 16 << 20;
const CACHE = join(tmpdir(), 'walkeeper-bench', 'pgbench-16mb');

/** Run pgbench until one whole segment after the current one is written; keep that segment. */
async function makeSegment(): Promise<string> {
  const teardown: (() => unknown)[] = [];
  try {
    const pg = await startCluster({ teardown: (fn) => teardown.push(fn) }, { conf: { autovacuum: 'off', wal_keep_size: '1GB' } });
    await pg.pgbench(['-i', '-q', '-s', '2']);
    const from = parseLsn(await pg.sql('select pg_current_wal_lsn()'));
    const segno = segmentNumber(from, SEG) + 1n;
    while (parseLsn(await pg.sql('select pg_current_wal_lsn()')) < segmentStart(segno + 1n, SEG) + 65536n) {
      await pg.pgbench(['-n', '-c', '4', '-j', '2', '-t', '2000']);
    }
    await pg.stop();
    const name = segmentFileName(1, segno, SEG);
    rmSync(CACHE, { recursive: true, force: true });
    mkdirSync(CACHE, { recursive: true });
    copyFileSync(join(pg.walDir, name), join(CACHE, name));
    writeFileSync(join(CACHE, 'made-by'), 'pgbench -i -s 2, then pgbench -n -c 4 -t 2000 runs; PostgreSQL 15\n');
    return name;
  } finally {
    for (const fn of teardown.reverse()) await fn();
  }
}

async function cachedSegment(): Promise<string> {
  const existing = existsSync(CACHE) ? readdirSync(CACHE).find((n) => parseSegmentFileName(n, SEG)) : undefined;
  const name = existing ?? (await makeSegment());
  chownToPg(join(tmpdir(), 'walkeeper-bench'));
  return name;
}

export async function walEndRows(): Promise<BenchRow[]> {
  const name = await cachedSegment();
  const path = join(CACHE, name);
  const data = readFileSync(path);
  const start = segmentStart(parseSegmentFileName(name, SEG)!.segno, SEG);
  const opts: ScannerOptions = { walSegSize: SEG, startLsn: start, startKind: 'page' };

  // the bytes already in wasm memory, as the host reads them
  const buf = new WasmBuffer(data.length);
  buf.view().set(data);
  const runWasm = (): bigint => {
    const s = new WasmWalScanner(opts);
    for (let off = 0; off < data.length; off += 4 << 20) s.feedAt(buf.ptr + off, Math.min(4 << 20, data.length - off));
    const end = s.endLsn;
    s.free();
    return end;
  };
  const runTs = (): bigint => {
    const s = new TsWalScanner(opts);
    for (let off = 0; off < data.length; off += 4 << 20) s.feed(data.subarray(off, off + (4 << 20)));
    return s.endLsn;
  };
  const wasmEnd = runWasm();
  if (runTs() !== wasmEnd) throw new Error('wasm scanner and TS twin disagree on the bench segment');
  const records = (() => {
    const s = new WasmWalScanner(opts);
    s.feedAt(buf.ptr, data.length);
    const n = s.recordCount;
    s.free();
    return n;
  })();

  const wasm = await measure(runWasm, { runs: 9, minMs: 200 });
  const ts = await measure(runTs, { runs: 5, minMs: 200 });
  buf.dispose();

  const dir = CACHE;
  const fileEnd = await findWalEnd(dir);
  if (fileEnd.endLsn !== wasmEnd) throw new Error('findWalEnd disagrees with the in-memory scan');
  const viaFile = await measure(() => findWalEnd(dir), { runs: 9, minMs: 200 });
  const waldumpArgs = ['-q', '-p', dir, '-s', formatLsn(start), '-e', formatLsn(start + BigInt(SEG))];
  const waldump = await measure(() => runPg('pg_waldump', waldumpArgs), { runs: 7, minMs: 0 });
  const cliPath = join(projectRoot(), 'bin', 'walkeeper.js');
  const cli = existsSync(cliPath) ? await measure(() => spawnSync(process.execPath, [cliPath, 'wal-end', dir]), { runs: 7, minMs: 0 }) : undefined;

  const mb = data.length;
  const what = `end of WAL, 16 MiB pgbench segment (${records} records)`;
  const rows: BenchRow[] = [
    {
      name: `${what}, in memory`,
      subject: 'wasm scanner',
      subjectValue: `${mbPerSec(mb, wasm.medianMs).toFixed(0)} MB/s`,
      baseline: 'TS twin',
      baselineValue: `${mbPerSec(mb, ts.medianMs).toFixed(0)} MB/s`,
      ratio: ts.medianMs / wasm.medianMs,
    },
    {
      name: `${what}, scan time`,
      subject: 'wasm scanner',
      subjectValue: `${wasm.medianMs.toFixed(1)} ms`,
      baseline: 'pg_waldump -q (process)',
      baselineValue: `${waldump.medianMs.toFixed(1)} ms`,
      ratio: waldump.medianMs / wasm.medianMs,
    },
    {
      name: `${what}, from the file`,
      subject: 'findWalEnd (read + scan)',
      subjectValue: `${viaFile.medianMs.toFixed(1)} ms`,
      baseline: 'pg_waldump -q (process)',
      baselineValue: `${waldump.medianMs.toFixed(1)} ms`,
      ratio: waldump.medianMs / viaFile.medianMs,
    },
  ];
  if (cli) {
    rows.push({
      name: `${what}, whole command`,
      subject: 'walkeeper wal-end (process)',
      subjectValue: `${cli.medianMs.toFixed(1)} ms`,
      baseline: 'pg_waldump -q (process)',
      baselineValue: `${waldump.medianMs.toFixed(1)} ms`,
      ratio: waldump.medianMs / cli.medianMs,
    });
  }
  return rows;
}
