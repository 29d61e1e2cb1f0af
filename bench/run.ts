// Runs every benchmark group and prints one table. Each row pairs walkeeper
// with a baseline measured in the same process, so the ratio is what counts.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { appendRows } from './append.js';
import { archiveRows } from './archive.js';
import { crcRows } from './crc.js';
import { failoverRows } from './failover.js';
import { frameRows } from './frames.js';
import { printTable, type BenchRow } from './lib.js';
import { quorumRows } from './quorum.js';
import { replicationRows } from './replication.js';
import { socketReadRows } from './socket-read.js';

type RowGroup = [name: string, run: () => Promise<BenchRow[]>];

/** The end-of-WAL bench lives in its own file, which may not exist yet. */
async function optionalGroup(file: string, exportName: string): Promise<RowGroup | undefined> {
  const url = new URL(file, import.meta.url);
  if (!existsSync(fileURLToPath(url))) return undefined;
  const mod = (await import(url.href)) as Record<string, unknown>;
  const run = mod[exportName];
  if (typeof run !== 'function') throw new Error(`${file} does not export ${exportName}()`);
  return [file, run as () => Promise<BenchRow[]>];
}

async function main(): Promise<void> {
  const groups: RowGroup[] = [
    ['crc', crcRows],
    ['frames', frameRows],
  ];
  const walEnd = await optionalGroup('./wal-end.js', 'walEndRows');
  if (walEnd) groups.push(walEnd);
  else process.stderr.write('bench: wal-end.js not built, skipping the end-of-WAL rows\n');
  groups.push(['append', appendRows]);
  groups.push(['socket-read', socketReadRows]);
  groups.push(['replication', replicationRows]);
  groups.push(['quorum', quorumRows]);
  groups.push(['failover', failoverRows]);
  groups.push(['archive', archiveRows]);
  groups.push(['archive-ingest', (await import('./archive-ingest.js')).archiveIngestRows]);

  const rows: BenchRow[] = [];
  for (const [name, run] of groups) {
    const started = Date.now();
    process.stderr.write(`bench: ${name} ...`);
    rows.push(...(await run()));
    process.stderr.write(` ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
  printTable(rows);
}

await main();
