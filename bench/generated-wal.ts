// WAL made once by a throwaway PostgreSQL primary and cached under
// $TMPDIR/walkeeper-bench/<name>: pgbench, then bulk inserts until the WAL
// reaches the size asked for, then a WAL switch, so the WAL ends at a
// segment boundary. The benchmarks replay it through the proposer library.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLsn, segmentFloor, type Lsn } from '../src/lsn.js';
import { chownToPg, runPgOk, startCluster, type PgCluster } from '../test/helpers/pg.js';

/** What a feeder needs to know of the cached WAL. LSNs as decimal text (JSON). */
export interface GeneratedWal {
  start: string;
  end: string;
  systemId: string;
  pgVersion: number;
}

export interface WalRecipe {
  /** The cache directory's name under $TMPDIR/walkeeper-bench. */
  name: string;
  /** How much WAL, in MiB. */
  mb: number;
  segSize: number;
  conf: Record<string, string | number>;
  /** Keep the cluster's files when it stops (the caller reads its pg_wal). */
  keep?: boolean;
  /** The first load (pgbench), before the bulk inserts fill up to `mb`. */
  load(pg: PgCluster): Promise<void>;
  log(msg: string): void;
}

/** The cached primary's data directory and its WAL's [start, end); made on first use. */
export async function cachedWal(recipe: WalRecipe): Promise<{ dataDir: string; meta: GeneratedWal }> {
  const root = join(tmpdir(), 'walkeeper-bench');
  const cache = join(root, recipe.name);
  const dataDir = join(cache, 'data');
  const metaPath = join(cache, 'meta.json');
  if (existsSync(metaPath)) return { dataDir, meta: JSON.parse(readFileSync(metaPath, 'utf8')) as GeneratedWal };
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  chownToPg(root);
  await runPgOk('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const teardown: Array<() => unknown> = [];
  try {
    const pg = await startCluster({ teardown: (fn) => teardown.push(fn) }, { dataDir, conf: recipe.conf, keep: recipe.keep });
    const lsn = async (): Promise<Lsn> => parseLsn(await pg.sql('select pg_current_wal_lsn()'));
    const seg = recipe.segSize;
    const start = segmentFloor(await lsn(), seg);
    const target = start + BigInt(recipe.mb) * (1n << 20n);
    recipe.log(`making ${recipe.mb} MiB of WAL (pgbench, then bulk inserts) ...`);
    await recipe.load(pg);
    await pg.sql('create table filler (id int, pad text)');
    for (let i = 0; (await lsn()) < target; i++) {
      await pg.sql(`insert into filler select g, repeat(md5(g::text), 3) from generate_series(${i * 50_000 + 1}, ${(i + 1) * 50_000}) g`);
    }
    // Finish the segment: the WAL served ends at a segment boundary.
    const ret = parseLsn(await pg.sql('select pg_switch_wal()'));
    const end = segmentFloor(ret, seg) === ret ? ret : segmentFloor(ret, seg) + BigInt(seg);
    const meta: GeneratedWal = {
      start: String(start),
      end: String(end),
      systemId: await pg.sql('select system_identifier from pg_control_system()'),
      pgVersion: Number(await pg.sql('show server_version_num')),
    };
    await pg.stop();
    writeFileSync(metaPath, JSON.stringify(meta));
    return { dataDir, meta };
  } finally {
    for (const fn of teardown.reverse()) await fn();
  }
}
