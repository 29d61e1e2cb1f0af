// The server side of in-band TLS on a real socket: after `S` the start-up
// continues encrypted, a client that leaves mid-handshake is noticed at once (not at the
// start-up timeout), a client that never starts the handshake is dropped at
// the start-up timeout, and without a context the answer stays `N`.
import t, { type Test } from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import { silentLogger } from '../../src/log.js';
import { ServerConnection, StartupInfo } from '../../src/pq/connection.js';
import { pgTempDir } from '../helpers/pg.js';
import { makeCa, makeServerCert, sslRequested } from '../helpers/tls.js';
import { query, RawClient, startupPacket, TERMINATE } from './raw-client.js';

const dir = pgTempDir('wk-pq-tls-');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ca = makeCa(dir);
const cert = makeServerCert(dir, ca);
const context = createSecureContext({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) });

interface Outcome {
  info: StartupInfo | null;
  tls: ServerConnection['tls'];
}

/** A listener whose connections run start-up (TLS with `ctx`) and answer any query with EmptyQueryResponse. */
async function serve(t: Test, ctx: SecureContext | null, startupTimeoutMs: number): Promise<{ port: number; outcomes: Promise<Outcome>[] }> {
  const outcomes: Promise<Outcome>[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const conn = new ServerConnection(socket, { log: silentLogger(), serverParams: () => [], startupTimeoutMs, tlsContext: () => ctx });
    outcomes.push(
      (async () => {
        const info = await conn.handshake();
        if (info) {
          for (;;) {
            const m = await conn.receive().catch(() => null);
            if (!m || m.tag === 0x58) break;
            conn.sendAll([Buffer.from([0x49, 0, 0, 0, 4])]);
            conn.readyForQuery();
          }
        }
        conn.close();
        await conn.closed;
        conn.dispose();
        return { info, tls: conn.tls };
      })(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, outcomes };
}

t.test('S, then start-up over TLS, with messages pipelined behind the StartupMessage', async (t) => {
  const s = await serve(t, context, 60_000);
  const { raw, answer } = await sslRequested(s.port);
  t.equal(answer, 'S');
  const tls = tlsConnect({ socket: raw, ca: readFileSync(ca.cert), servername: 'localhost' });
  await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
  const c = RawClient.over(tls);
  c.write(Buffer.concat([startupPacket({ user: 'u', application_name: 'tls-test' }), query(''), TERMINATE]));
  t.equal((await c.readUntil('Z')).map((m) => m.tag).join(''), 'RZ', 'AuthenticationOk, ReadyForQuery');
  t.equal((await c.readUntil('Z')).map((m) => m.tag).join(''), 'IZ', 'the pipelined query is answered');
  await c.expectClosed();
  const o = await s.outcomes[0];
  t.equal(o.info?.applicationName, 'tls-test');
  t.match(o.tls, { protocol: /^TLSv1\.[23]$/ }, 'the connection knows its TLS session');
});

t.test('a client that leaves mid-handshake ends the start-up at once, not at the timeout', async (t) => {
  const s = await serve(t, context, 600_000);
  const { raw, answer } = await sslRequested(s.port);
  t.equal(answer, 'S');
  raw.destroy();
  const o = await s.outcomes[0];
  t.equal(o.info, null, 'start-up ended (a ten-minute timeout could not have fired)');
  t.equal(o.tls, null);
});

t.test('a client that never starts the handshake is dropped at the start-up timeout', async (t) => {
  const s = await serve(t, context, 500);
  const { raw, answer } = await sslRequested(s.port);
  t.equal(answer, 'S');
  const closed = new Promise<Buffer>((resolve) => {
    let got = Buffer.alloc(0);
    raw.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    raw.once('close', () => resolve(got));
  });
  t.equal((await closed).length, 0, 'closed without a plaintext error inside the TLS stream');
  t.equal((await s.outcomes[0]).info, null);
});

t.test('without a context an SSLRequest is answered N', async (t) => {
  const s = await serve(t, null, 60_000);
  const { raw, answer } = await sslRequested(s.port);
  t.equal(answer, 'N');
  raw.destroy();
});
