// The server side of a connection over a real socket: start-up with SSL and
// GSSENC refusal, options, authentication, ParameterStatus, errors, size
// limits, Terminate — against raw bytes and against node-postgres.
import t, { type Test } from 'tap';
import { createServer, type AddressInfo, type Server } from 'node:net';
import pg from 'pg';
import { silentLogger } from '../../src/log.js';
import { cleartextPasswordAuth, type Authenticator } from '../../src/pq/auth.js';
import { commandComplete, dataRow, rowDescription, textField } from '../../src/pq/backend.js';
import { ServerConnection, StartupInfo } from '../../src/pq/connection.js';
import { PgError } from '../../src/pq/errors.js';
import { errorFields, query, RawClient, startupPacket, tagged, TERMINATE } from './raw-client.js';

interface TestServer {
  port: number;
  seen: StartupInfo[];
  server: Server;
}

async function serve(t: Test, opts: { auth?: Authenticator; maxMessage?: number } = {}): Promise<TestServer> {
  const seen: StartupInfo[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const conn = new ServerConnection(socket, {
      log: silentLogger(),
      auth: opts.auth,
      maxMessage: opts.maxMessage,
      validateStartup: (info) => {
        if (info.get('ztimelineid') === 'bad') throw new PgError({ severity: 'FATAL', code: '22023', message: 'bad timeline' });
      },
      serverParams: (info) => [
        ['server_version', '15.0 (test)'],
        ['integer_datetimes', 'on'],
        ['application_name', info.applicationName],
      ],
      backendKey: { pid: 77, secret: 99 },
      startupTimeoutMs: 2000,
    });
    void (async () => {
      const info = await conn.handshake();
      if (!info) return;
      seen.push(info);
      for (;;) {
        let m;
        try {
          m = await conn.receive();
        } catch (err) {
          if (err instanceof PgError) conn.fatal(err);
          else conn.close();
          return;
        }
        if (m.tag === 0x58) {
          conn.close();
          return;
        }
        const sql = m.body.subarray(0, m.body.length - 1).toString();
        if (sql === 'PING') {
          conn.sendAll([rowDescription([textField('pong')]), dataRow(['yes']), commandComplete('PING')]);
        } else {
          conn.sendError(new PgError({ code: '0A000', message: `unknown: ${sql}` }));
        }
        conn.readyForQuery();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, seen, server };
}

t.test('SSLRequest and GSSENCRequest get N, then start-up completes', async (t) => {
  const s = await serve(t);
  const c = await RawClient.connect(s.port);
  t.equal(await c.sslRequest(), 'N');
  t.equal(await c.sslRequest(80877104), 'N', 'GSSENCRequest');
  const msgs = await c.startup({ user: 'postgres', database: 'replication', replication: 'true', application_name: 'pg_receivewal' });
  t.same(msgs.map((m) => m.tag).join(''), 'RSSSKZ');
  t.same(msgs[0].body, Buffer.from('00000000', 'hex'), 'AuthenticationOk');
  const params = Object.fromEntries(msgs.filter((m) => m.tag === 'S').map((m) => m.body.toString('latin1').split('\0').slice(0, 2)));
  t.same(params, { server_version: '15.0 (test)', integer_datetimes: 'on', application_name: 'pg_receivewal' });
  t.same(msgs[4].body, Buffer.from('0000004d00000063', 'hex'), 'BackendKeyData');
  t.same(msgs[5].body, Buffer.from('I'), 'idle');
  t.equal(s.seen[0].replication, 'physical');
  c.write(query('PING'));
  t.same((await c.readUntil('Z')).map((m) => m.tag).join(''), 'TDCZ');
  c.write(TERMINATE);
  await c.expectClosed();
});

t.test('messages pipelined right behind the StartupMessage are kept', async (t) => {
  const s = await serve(t);
  const c = await RawClient.connect(s.port);
  c.write(Buffer.concat([startupPacket({ user: 'u' }), query('PING'), query('NOPE'), TERMINATE]));
  const tags = (await c.readUntil('Z')).map((m) => m.tag).join('');
  t.equal(tags, 'RSSSKZ');
  t.equal((await c.readUntil('Z')).map((m) => m.tag).join(''), 'TDCZ');
  const err = await c.readUntil('Z');
  t.equal(errorFields(err[0].body).C, '0A000', 'an unknown command is an ERROR and the connection goes on');
  await c.expectClosed();
});

t.test('options with several -c key=value reach the server', async (t) => {
  const s = await serve(t);
  const client = new pg.Client({
    host: '127.0.0.1',
    port: s.port,
    user: 'postgres',
    database: 'x',
    options: '-c ztenantid=0123456789abcdef0123456789abcdef -c ztimelineid=fedcba9876543210fedcba9876543210 -c application_name=proposer',
  });
  await client.connect();
  const r = await client.query('PING');
  t.same(r.rows, [{ pong: 'yes' }]);
  await t.rejects(client.query('SELECT 1'), { code: '0A000', message: 'unknown: SELECT 1' });
  t.same((await client.query('PING')).rows, [{ pong: 'yes' }], 'usable after the error');
  await client.end();
  const info = s.seen[0];
  t.equal(info.get('ztenantid'), '0123456789abcdef0123456789abcdef');
  t.equal(info.get('ztimelineid'), 'fedcba9876543210fedcba9876543210');
  t.equal(info.applicationName, 'proposer');
});

t.test('refusals during start-up are FATAL and close the connection', async (t) => {
  const s = await serve(t);
  const cases: Array<[string, Buffer, string]> = [
    ['validateStartup refuses', startupPacket({ user: 'u', ztimelineid: 'bad' }), '22023'],
    ['bad options syntax', startupPacket({ user: 'u', options: 'not-an-option' }), '42601'],
    ['protocol 2', startupPacket({ user: 'u' }, 0x20000), '0A000'],
    ['length below 8', Buffer.from('0000000400030000', 'hex'), '08P01'],
    ['length over 10000', Buffer.from('0001000000030000', 'hex'), '08P01'],
  ];
  for (const [what, bytes, code] of cases) {
    const c = await RawClient.connect(s.port);
    c.write(bytes);
    const f = await c.expectError();
    t.equal(f.S, 'FATAL', `${what}: FATAL`);
    t.equal(f.V, 'FATAL');
    t.equal(f.C, code, `${what}: ${f.M}`);
    await c.expectClosed();
  }
  const c = await RawClient.connect(s.port);
  const cancel = Buffer.from('0000001004d2162e0000004d00000063', 'hex');
  c.write(cancel);
  await c.expectClosed();
  t.pass('a CancelRequest is read and the socket closed');
});

t.test('an oversized or negative-length message is a protocol error', async (t) => {
  const s = await serve(t, { maxMessage: 1024 });
  for (const [what, bytes] of [
    ['over the limit', Buffer.concat([Buffer.from('51', 'hex'), Buffer.from('00000801', 'hex')])],
    ['length 3', Buffer.from('5100000003', 'hex')],
    ['negative length', Buffer.from('51ffffffff', 'hex')],
  ] as const) {
    const c = await RawClient.connect(s.port);
    await c.startup({ user: 'u' });
    c.write(bytes);
    const f = await c.expectError();
    t.equal(f.C, '08P01', `${what}: ${f.M}`);
    t.equal(f.S, 'FATAL');
    await c.expectClosed();
  }
  // A message just under the limit is fine.
  const c = await RawClient.connect(s.port);
  await c.startup({ user: 'u' });
  c.write(tagged('Q', Buffer.concat([Buffer.alloc(1000, 0x41), Buffer.from([0])])));
  const f = errorFields((await c.readUntil('E')).pop()!.body);
  t.equal(f.C, '0A000');
  c.destroy();
});

t.test('cleartext password authentication', async (t) => {
  const s = await serve(t, { auth: cleartextPasswordAuth((user, pw) => user === 'sk' && pw === 'secret-token') });
  const ok = new pg.Client({ host: '127.0.0.1', port: s.port, user: 'sk', password: 'secret-token', database: 'x' });
  await ok.connect();
  t.same((await ok.query('PING')).rows, [{ pong: 'yes' }]);
  await ok.end();
  const bad = new pg.Client({ host: '127.0.0.1', port: s.port, user: 'sk', password: 'wrong', database: 'x' });
  await t.rejects(bad.connect(), { code: '28P01' });
  await bad.end().catch(() => {});
});

t.test('a client that never finishes start-up is dropped', async (t) => {
  const s = await serve(t);
  const c = await RawClient.connect(s.port);
  c.write(Buffer.from('00000010', 'hex'));
  const f = await c.expectError(5000);
  t.equal(f.C, '08P01');
  t.match(f.M, /timeout/);
  await c.expectClosed();
});

t.test('receive(signal): an abort rejects with its reason and consumes nothing', async (t) => {
  const outcome: { aborted?: unknown; next?: string } = {};
  const done = new Promise<void>((resolve) => {
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      const conn = new ServerConnection(socket, { log: silentLogger(), serverParams: () => [] });
      void (async () => {
        if (!(await conn.handshake())) return;
        const ac = new AbortController();
        const reason = new Error('stop waiting');
        setTimeout(() => ac.abort(reason), 50);
        await conn.receive(ac.signal).then(
          () => {},
          (err: unknown) => {
            outcome.aborted = err === reason;
          },
        );
        // The client sends its query only after the abort: the next receive gets it.
        socket.write(commandComplete('ABORTED'));
        const m = await conn.receive();
        outcome.next = m.body.subarray(0, m.body.length - 1).toString();
        conn.close();
        resolve();
      })();
    });
    server.listen(0, '127.0.0.1', () => {
      void (async () => {
        const c = await RawClient.connect((server.address() as AddressInfo).port);
        await c.startup({ user: 'u' });
        await c.readUntil('C');
        c.write(query('AFTER'));
        await c.expectClosed();
      })();
    });
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  });
  await done;
  t.equal(outcome.aborted, true, 'rejected with the signal reason');
  t.equal(outcome.next, 'AFTER', 'the message after the abort goes to the next receive');
});
