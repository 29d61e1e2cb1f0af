// The proposer's per-read cost on a client socket: a ping-pong of 45-byte
// messages (the size of a SafeKeeperResponse in its CopyData) over
// loopback, this process being both ends; the client reads (a) as the
// proposer's connections do, through net.connect's `onread` into one reused
// buffer, and (b) the default way, a Buffer per read emitted as 'data'
// through a Readable. The echo side is the same in both, so the difference
// per round trip is the difference per client read. CPU time (user +
// system, this process) per round trip, in alternating rounds.
// WK_BENCH_SOCKET_READ=0 skips it.
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternatingMedians, type BenchRow } from './lib.js';

const MESSAGE = Buffer.alloc(45, 0x64);
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** CPU µs per round trip for `count` round trips; `onread` picks how the client reads. */
async function run(port: number, onread: boolean, count: number): Promise<number> {
  let left = count;
  let socket!: Socket;
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  const received = (): void => {
    if (--left > 0) socket.write(MESSAGE);
    else finished();
  };
  socket = onread
    ? connect({ host: '127.0.0.1', port, onread: { buffer: READ_BUFFER, callback: (): boolean => (received(), true) } })
    : connect({ host: '127.0.0.1', port }).on('data', received);
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const cpu0 = process.cpuUsage();
  socket.write(MESSAGE);
  await done;
  const used = process.cpuUsage(cpu0);
  socket.destroy();
  return (used.user + used.system) / count;
}

export async function socketReadRows(): Promise<BenchRow[]> {
  if (process.env.WK_BENCH_SOCKET_READ === '0') return [];
  const server = createServer((c) => {
    c.setNoDelay(true);
    c.on('data', (d) => c.write(d));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const count = 20_000;
  try {
    // Warm-up, then alternating rounds.
    await run(port, true, count >> 2);
    await run(port, false, count >> 2);
    const [a, b] = await alternatingMedians([() => run(port, true, count), () => run(port, false, count)], 5);
    return [
      {
        name: 'client socket read of a 45-byte message, loopback ping-pong: CPU per round trip',
        subject: 'net.connect onread (one reused buffer)',
        subjectValue: `${a.toFixed(2)} µs`,
        baseline: "a Buffer per read, 'data' events",
        baselineValue: `${b.toFixed(2)} µs`,
        ratio: b / a,
      },
    ];
  } finally {
    server.close();
  }
}

// `node dist/bench/socket-read.js` runs this group alone.
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { printTable } = await import('./lib.js');
  printTable(await socketReadRows());
}
