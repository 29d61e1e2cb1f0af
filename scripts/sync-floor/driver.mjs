// Ping-pong driver: ROUNDS requests of SIZE bytes, one in flight, then
// prints the server's CPU per round (user + system, from /proc) and the
// round trip. Usage: node driver.mjs PORT SERVER_PID [ROUNDS] [SIZE]
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';

const [port, pid, rounds = '5000', size = '300'] = process.argv.slice(2);
const cpu = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').map(Number);
  return { u: f[11] * 1e4, s: f[12] * 1e4 }; // µs
};
const req = Buffer.alloc(Number(size), 7);
const sock = connect({ port: Number(port), host: '127.0.0.1', noDelay: true });
await new Promise((r) => sock.once('connect', r));
let left = Number(rounds);
let got = 0;
const c0 = cpu();
const t0 = process.hrtime.bigint();
await new Promise((resolve) => {
  sock.on('data', (d) => {
    got += d.length;
    if (got < 8) return;
    got -= 8;
    if (--left === 0) return resolve();
    sock.write(req);
  });
  sock.write(req);
});
const us = Number(process.hrtime.bigint() - t0) / 1e3 / Number(rounds);
const c1 = cpu();
const n = Number(rounds);
console.log(`server CPU per round: ${((c1.u - c0.u + c1.s - c0.s) / n).toFixed(1)} µs (user ${((c1.u - c0.u) / n).toFixed(1)}, system ${((c1.s - c0.s) / n).toFixed(1)}); round trip ${us.toFixed(0)} µs`);
sock.end();
