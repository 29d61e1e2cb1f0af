// The floor of one sync round in Node: read a request, pwrite it, fdatasync
// (SYNC=pool: through libuv's thread pool, as the safekeeper does;
// SYNC=inline: blocking, on the event loop), write an 8-byte reply.
// Usage: node server.mjs PORT FILE
import { createServer } from 'node:net';
import { fdatasync, fdatasyncSync, openSync, writeSync } from 'node:fs';

const [port, file] = process.argv.slice(2);
const fd = openSync(file, 'a+');
const inline = process.env.SYNC === 'inline';
let off = 0;
const server = createServer({ noDelay: true }, (sock) => {
  sock.on('data', (chunk) => {
    writeSync(fd, chunk, 0, chunk.length, off);
    off = (off + chunk.length) % (16 << 20);
    const reply = Buffer.alloc(8);
    reply.writeBigUInt64LE(BigInt(off));
    if (inline) {
      fdatasyncSync(fd);
      sock.write(reply);
    } else {
      fdatasync(fd, (err) => {
        if (err) throw err;
        sock.write(reply);
      });
    }
  });
  sock.on('close', () => process.exit(0));
});
server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
