// The proposer's per-request cost of sending WAL to a safekeeper: a
// SafeKeeperRequest as one CopyData over a loopback socket to a reader that
// discards it, written (a) as ProposerClient.append does it (writeRequest:
// below COPY_WAL_BELOW bytes of WAL copied once into one buffer with the
// headers, from it on the headers corked with the WAL itself, one writev
// and no copy), and (b) the way it used to: the request encoded with its
// WAL copied in, then copied again into a CopyData message, one write. CPU
// time (user + system, this process: writer and reader both) per request,
// in alternating rounds; WAL sizes of a small commit (200 bytes), the
// threshold, a busy batch (8 KiB) and a full request (128 KiB).
// WK_BENCH_APPEND=0 skips it.
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyData } from '../src/pq/frontend.js';
import { COPY_WAL_BELOW, writeRequest } from '../src/proposer/client.js';
import { encodeSafeKeeperRequest, encodeSafeKeeperRequestHeader, type SafeKeeperRequest } from '../src/protocol/index.js';
import { alternatingMedians, type BenchRow } from './lib.js';

const NODE_ID = { term: 7n, uuid: new Uint8Array(16).fill(3) };

type Send = (s: Socket, req: SafeKeeperRequest) => boolean;

const current: Send = (s, req) => {
  writeRequest(s, encodeSafeKeeperRequestHeader(req), req.wal);
  return s.writableLength < 1 << 20;
};

const copied: Send = (s, req) => s.write(copyData(encodeSafeKeeperRequest(req)));

/** CPU µs per request for `count` requests of `wal`, sent with `send`. */
async function run(s: Socket, send: Send, wal: Uint8Array, count: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  let lsn = 0x1000000n;
  for (let i = 0; i < count; i++) {
    const end = lsn + BigInt(wal.length);
    if (!send(s, { senderId: NODE_ID, beginLsn: lsn, endLsn: end, restartLsn: 0n, commitLsn: lsn, wal })) await once(s, 'drain');
    lsn = end;
  }
  // Everything handed to the kernel before the clock stops: writes complete in order, so a last
  // empty write's callback runs after all of them ('drain' is not emitted when no write returned false).
  await new Promise<void>((done) => s.write(new Uint8Array(0), () => done()));
  const used = process.cpuUsage(cpu0);
  return (used.user + used.system) / count;
}

export async function appendRows(): Promise<BenchRow[]> {
  if (process.env.WK_BENCH_APPEND === '0') return [];
  const server = createServer((c) => c.on('data', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const s = connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  s.setNoDelay(true);
  const rows: BenchRow[] = [];
  try {
    for (const size of [200, COPY_WAL_BELOW, 8192, 128 * 1024]) {
      const wal = new Uint8Array(size).fill(0x5a);
      const count = Math.max(5_000, Math.floor((16 << 20) / size));
      // Warm-up, then alternating rounds.
      await run(s, current, wal, count >> 2);
      await run(s, copied, wal, count >> 2);
      const [a, b] = await alternatingMedians([() => run(s, current, wal, count), () => run(s, copied, wal, count)], 3);
      rows.push({
        name: `WAL push request, ${size} B of WAL, to a loopback socket: CPU per request`,
        subject: size < COPY_WAL_BELOW ? 'ProposerClient: one copy, one write' : 'ProposerClient: corked headers + WAL (writev, no copy)',
        subjectValue: `${a.toFixed(2)} µs`,
        baseline: 'encode + CopyData copy, one write',
        baselineValue: `${b.toFixed(2)} µs`,
        ratio: b / a,
      });
    }
  } finally {
    s.destroy();
    server.close();
  }
  return rows;
}

// `node dist/bench/append.js` runs this group alone.
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { printTable } = await import('./lib.js');
  printTable(await appendRows());
}
