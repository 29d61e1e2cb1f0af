import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import t from 'tap';
import { PgClient, PgServerError, ProposerClient, type ProposerConnectOptions } from '../../src/proposer/index.js';
import { COPY_WAL_BELOW } from '../../src/proposer/client.js';
import type { CopyOutcome } from '../../src/proposer/pg-client.js';
import { encodeSafeKeeperRequest, encodeSafeKeeperResponse } from '../../src/protocol/index.js';
import { NODE_ID, NODE_ID_BYTES, SAFEKEEPER_INFO, SAFEKEEPER_INFO_BYTES, SERVER_INFO, SERVER_INFO_BYTES } from '../protocol/fixtures.js';
import { freePort } from '../helpers/pg.js';
import {
  AUTH_CLEARTEXT,
  AUTH_OK,
  COPY_BOTH,
  COPY_DONE,
  READY_IDLE,
  FakeServer,
  authMd5,
  authOther,
  authSasl,
  authSaslContinue,
  authSaslFinal,
  backendKeyData,
  commandComplete,
  copyData,
  dataRow,
  errorResponse,
  hex,
  noticeResponse,
  parameterStatus,
  rowDescription,
  ScramServer,
  type FakeConn,
} from './fake-server.js';

const TENANT = '0123456789abcdef0123456789abcdef';
const TIMELINE = 'fedcba9876543210fedcba9876543210';

let server: FakeServer;
t.before(async () => {
  server = await FakeServer.start();
});
t.teardown(() => server.close());

function opts(over: Partial<ProposerConnectOptions> = {}): ProposerConnectOptions {
  return { host: '127.0.0.1', port: server.port, tenantId: TENANT, timelineId: TIMELINE, ...over };
}

/** Connect a client and play a trust-auth startup on the server side. */
async function connected(over: Partial<ProposerConnectOptions> = {}): Promise<{ client: ProposerClient; conn: FakeConn }> {
  const pending = ProposerClient.connect(opts(over));
  const conn = await server.accept();
  await conn.readStartup();
  conn.send(AUTH_OK, parameterStatus('server_version', '15.0 (walkeeper)'), READY_IDLE);
  return { client: await pending, conn };
}

async function pushing(): Promise<{ client: ProposerClient; conn: FakeConn }> {
  const c = await connected();
  const started = c.client.startWalPush();
  const q = await c.conn.read();
  t.equal(q.tag, 'Q');
  t.equal(q.body.toString(), 'START_WAL_PUSH\0');
  c.conn.send(COPY_BOTH);
  await started;
  return c;
}

/** A WAL push stream greeted and with the vote granted (epoch 1). */
async function voted(): Promise<{ client: ProposerClient; conn: FakeConn }> {
  const c = await pushing();
  await Promise.all([c.client.greet(SERVER_INFO), c.conn.readCopyData().then(() => c.conn.send(copyData(SAFEKEEPER_INFO_BYTES)))]);
  const vote = c.client.vote({ nodeId: NODE_ID, vcl: 0n, epoch: 1n });
  await c.conn.readCopyData();
  c.conn.send(copyData(NODE_ID_BYTES));
  await vote;
  return c;
}

const response = (epoch: bigint, flush: bigint) =>
  encodeSafeKeeperResponse({ epoch, flushLsn: flush, hsFeedback: { ts: 0n, xmin: 0xffffffffffffffffn, catalogXmin: 0xffffffffffffffffn } });

t.test('startup: the exact StartupMessage, then trust auth', async (t) => {
  const pending = ProposerClient.connect(opts({ applicationName: 'wp-test' }));
  const conn = await server.accept();
  const startup = await conn.readStartup();
  const body = Buffer.from(`user\0walproposer\0ztenantid\0${TENANT}\0ztimelineid\0${TIMELINE}\0application_name\0wp-test\0\0`);
  const expected = Buffer.concat([hex('00000000 00030000'), body]);
  expected.writeInt32BE(expected.length, 0);
  t.same(startup.raw, expected);
  t.equal(startup.protocol, 0x30000);
  conn.send(AUTH_OK, READY_IDLE);
  (await pending).close();
});

// Start-up and authentication live in the frontend base both clients extend: run them through each.
type Login = { user?: string; password?: string; connectTimeoutMs?: number };
const frontends: [string, (login: Login) => Promise<ProposerClient | PgClient>][] = [
  ['ProposerClient', (login) => ProposerClient.connect(opts(login))],
  ['PgClient', (login) => PgClient.connect({ host: '127.0.0.1', port: server.port, database: 'replication', ...login, user: login.user ?? 'walproposer' })],
];

for (const [name, connect] of frontends) {
  /** Start connecting; the server side has read the StartupMessage. */
  const starting = async (login: Login = {}) => {
    const pending = connect(login);
    pending.catch(() => {});
    const conn = await server.accept();
    await conn.readStartup();
    return { pending, conn };
  };

  t.test(`${name}: authentication`, async (t) => {
    let { pending, conn } = await starting({ password: 's3cret' });
    conn.send(AUTH_CLEARTEXT);
    t.same(await conn.read(), { tag: 'p', body: Buffer.from('s3cret\0') }, 'cleartext');
    conn.send(AUTH_OK, parameterStatus('server_version', '15.0'), backendKeyData(42, 7), noticeResponse({ S: 'NOTICE', M: 'hello' }), READY_IDLE);
    let client = await pending;
    t.equal(client.parameters.get('server_version'), '15.0');
    t.same(client.backendKey, { pid: 42, secret: 7 });
    client.close();
    t.same(await conn.read(), { tag: 'X', body: Buffer.alloc(0) }, 'Terminate on close');

    ({ pending, conn } = await starting({ password: 'pw', user: 'alice' }));
    const salt = hex('01020304');
    conn.send(authMd5(salt));
    const inner = createHash('md5').update('pwalice').digest('hex');
    const outer = createHash('md5').update(inner).update(salt).digest('hex');
    t.same((await conn.read()).body.toString(), `md5${outer}\0`, 'md5 of password + user, then of the salt');
    conn.send(AUTH_OK, READY_IDLE);
    (await pending).close();

    ({ pending, conn } = await starting({ password: 'pencil' }));
    const scram = new ScramServer('pencil');
    conn.send(authSasl(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']));
    const first = scram.first((await conn.read()).body);
    t.equal(first.mechanism, 'SCRAM-SHA-256');
    conn.send(authSaslContinue(first.serverFirst));
    conn.send(authSaslFinal(scram.final((await conn.read()).body)), AUTH_OK, READY_IDLE);
    client = await pending;
    t.notOk(client.isClosed, 'SCRAM-SHA-256: the client proof checked out, and so did the server signature');
    client.close();

    ({ pending, conn } = await starting({ password: 'pencil' }));
    // a server that cannot prove it knows the password
    const impostor = new ScramServer('pencil');
    conn.send(authSasl());
    conn.send(authSaslContinue(impostor.first((await conn.read()).body).serverFirst));
    impostor.final((await conn.read()).body);
    conn.send(authSaslFinal(`v=${Buffer.alloc(32).toString('base64')}`));
    await t.rejects(pending, /SCRAM server signature does not match/);
  });

  t.test(`${name}: start-up failures`, async (t) => {
    let { pending, conn } = await starting();
    conn.send(AUTH_CLEARTEXT);
    await t.rejects(pending, /asks for a password and none was given/);

    ({ pending, conn } = await starting({ password: 'x' }));
    conn.send(authSasl(['SCRAM-SHA-256-PLUS']));
    await t.rejects(pending, /offers SASL mechanisms SCRAM-SHA-256-PLUS; only SCRAM-SHA-256 is supported/);

    ({ pending, conn } = await starting({ password: 'x' }));
    conn.send(authSaslFinal('v=AAAA'));
    await t.rejects(pending, /sent SASL data before SASL started/);

    ({ pending, conn } = await starting({ password: 'x' }));
    conn.send(authOther(7));
    await t.rejects(pending, /unsupported authentication method \(code 7\)/);

    ({ pending, conn } = await starting({ password: 'wrong' }));
    conn.send(AUTH_CLEARTEXT);
    await conn.read();
    conn.send(errorResponse({ S: 'FATAL', V: 'FATAL', C: '28P01', M: 'password authentication failed' }));
    conn.socket.end();
    const err = await pending.catch((e) => e);
    t.ok(err instanceof PgServerError);
    t.equal(err.code, '28P01');
    t.equal(err.severity, 'FATAL');
    t.equal(err.message, 'password authentication failed');
    t.equal(err.fields.M, 'password authentication failed');

    ({ pending, conn } = await starting());
    conn.socket.destroy();
    await t.rejects(pending, /connection to 127\.0\.0\.1:\d+ closed during startup/);

    ({ pending } = await starting({ connectTimeoutMs: 100 }));
    await t.rejects(pending, /timed out after 100 ms connecting to 127\.0\.0\.1:\d+/);

    ({ pending, conn } = await starting());
    conn.send(AUTH_OK, READY_IDLE, AUTH_OK);
    const client = await pending;
    const closed = new Promise<void>((resolve) => (client instanceof PgClient ? client.onClose(() => resolve()) : client.onStreamEnd(() => resolve())));
    await closed;
    t.ok(client.isClosed, 'Authentication after start-up breaks the connection');
  });
}

t.test('PgClient: queries, COPY BOTH and the result after it, close', async (t) => {
  const pending = PgClient.connect({
    host: '127.0.0.1',
    port: server.port,
    user: 'walproposer',
    database: 'replication',
    replication: true,
    applicationName: 'pg-test',
    params: { ztenantid: TENANT },
  });
  const conn = await server.accept();
  t.same((await conn.readStartup()).params, { user: 'walproposer', database: 'replication', replication: 'true', application_name: 'pg-test', ztenantid: TENANT });
  conn.send(AUTH_OK, READY_IDLE);
  const client = await pending;
  const closed = new Promise<Error>((resolve) => client.onClose(resolve));

  const q = client.query('IDENTIFY_SYSTEM');
  t.same(await conn.read(), { tag: 'Q', body: Buffer.from('IDENTIFY_SYSTEM\0') });
  conn.send(rowDescription(['systemid', 'timeline']), dataRow(['7000', '1']), commandComplete('IDENTIFY_SYSTEM'), READY_IDLE);
  t.same(await q, { fields: ['systemid', 'timeline'], rows: [['7000', '1']], command: 'IDENTIFY_SYSTEM' });

  const refused = client.copyBoth('START_REPLICATION 0/0', { data: () => t.fail('no data'), end: () => t.fail('no end') });
  await conn.read();
  conn.send(errorResponse({ S: 'ERROR', C: '58P01', M: 'requested WAL segment has already been removed' }), READY_IDLE);
  const err = await refused.catch((e) => e);
  t.ok(err instanceof PgServerError, 'a refused START_REPLICATION rejects with the server error');
  t.equal(err.code, '58P01');

  const payloads: string[] = [];
  let serverDone = false;
  let end!: (o: CopyOutcome) => void;
  const outcome = new Promise<CopyOutcome>((resolve) => (end = resolve));
  const started = client.copyBoth('START_REPLICATION 0/1000000 TIMELINE 1', { data: (p) => payloads.push(p.toString()), serverDone: () => (serverDone = true), end });
  t.same(await conn.read(), { tag: 'Q', body: Buffer.from('START_REPLICATION 0/1000000 TIMELINE 1\0') });
  conn.send(COPY_BOTH, copyData(Buffer.from('w1')), copyData(Buffer.from('w2')));
  await started;
  t.ok(client.send(Buffer.from('status')));
  t.same(await conn.readCopyData(), Buffer.from('status'));
  conn.send(COPY_DONE);
  t.same(await conn.read(), { tag: 'c', body: Buffer.alloc(0) }, 'CopyDone answered');
  // the end of a timeline: the next one and where it starts
  conn.send(rowDescription(['next_tli', 'next_tli_startpos']), dataRow(['2', '0/3000000']), commandComplete('SELECT'), commandComplete('START_STREAMING'), READY_IDLE);
  t.same(await outcome, { kind: 'done', rows: [['2', '0/3000000']] });
  t.same(payloads, ['w1', 'w2']);
  t.ok(serverDone);

  let cut!: (o: CopyOutcome) => void;
  const broken = new Promise<CopyOutcome>((resolve) => (cut = resolve));
  const streaming = client.copyBoth('START_REPLICATION 0/3000000 TIMELINE 2', { data: () => {}, end: cut });
  await conn.read();
  conn.send(COPY_BOTH);
  await streaming;
  client.close();
  t.same(await conn.read(), { tag: 'X', body: Buffer.alloc(0) }, 'Terminate on close');
  t.match(await broken, { kind: 'closed', error: { message: /closed by the client/ } });
  t.match((await closed).message, /closed by the client/);
  await t.rejects(client.query('SELECT 1'), /SELECT 1: the connection to 127\.0\.0\.1:\d+ is closed \(connection to .* closed by the client\)/);
});

const socketOf = (c: ProposerClient | PgClient): Socket => (c as unknown as { socket: Socket }).socket;

/** Wait (with a deadline) until `client` has received `bytes` bytes it has not framed into a message yet. */
async function buffered(client: ProposerClient, bytes: number): Promise<void> {
  const framer = (client as unknown as { framer: { buffered: number } }).framer;
  const deadline = Date.now() + 5000;
  while (framer.buffered !== bytes) {
    if (Date.now() > deadline) throw new Error(`the client buffered ${framer.buffered} bytes, expected ${bytes}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

t.test('reads go from the socket straight into the framer, through one buffer every connection shares', async (t) => {
  const a = await connected();
  const b = await connected();
  t.equal(socketOf(a.client).listenerCount('data'), 0, "no 'data' listener: reads come through net.connect's onread");
  const qa = a.client.query('SELECT 1');
  const qb = b.client.query('SELECT 2');
  await a.conn.read();
  await b.conn.read();
  // Half a result on one connection, a whole one on the other, then the rest: each keeps its own bytes.
  const resultA = Buffer.concat([rowDescription(['a']), dataRow(['from a']), commandComplete('SELECT 1'), READY_IDLE]);
  a.conn.send(resultA.subarray(0, 9));
  await buffered(a.client, 9);
  b.conn.send(rowDescription(['b']), dataRow(['from b']), commandComplete('SELECT 1'), READY_IDLE);
  t.same((await qb).rows, [['from b']]);
  a.conn.send(resultA.subarray(9));
  t.same((await qa).rows, [['from a']]);
  a.client.close();
  b.client.close();
});

t.test("sslmode=prefer against a server without TLS: the answer 'N' arrives through the same reads, start-up goes on in plaintext", async (t) => {
  const pending = ProposerClient.connect(opts({ tls: { mode: 'prefer' } }));
  const conn = await server.accept();
  t.equal((await conn.readStartup()).protocol, 80877103, 'SSLRequest first');
  conn.send(Buffer.from('N'));
  t.equal((await conn.readStartup()).params.ztenantid, TENANT, 'then the StartupMessage on the same socket');
  conn.send(AUTH_OK, READY_IDLE);
  const client = await pending;
  t.equal(socketOf(client).listenerCount('data'), 0);
  const q = client.query('SELECT 1');
  await conn.read();
  conn.send(rowDescription(['x']), dataRow(['1']), commandComplete('SELECT 1'), READY_IDLE);
  t.same((await q).rows, [['1']]);
  client.close();
});

t.test('ProposerClient: nothing listening, bad ids', async (t) => {
  await t.rejects(ProposerClient.connect(opts({ port: await freePort() })), /closed during startup: connect ECONNREFUSED/);
  await t.rejects(ProposerClient.connect(opts({ tenantId: 'xyz' })), /tenantId must be 32 hex digits, got "xyz"/);
});

t.test('simple queries', async (t) => {
  const { client, conn } = await connected();
  const first = client.query('IDENTIFY_SYSTEM');
  const second = client.query('SHOW nothing');
  const third = client.query('SHOW wal_segment_size');
  t.same(await conn.read(), { tag: 'Q', body: Buffer.from('IDENTIFY_SYSTEM\0') });
  conn.send(rowDescription(['systemid', 'timeline', 'xlogpos', 'dbname']), dataRow(['7000', '1', '0/16B3748', null]), commandComplete('IDENTIFY_SYSTEM'), READY_IDLE);
  t.same(await first, { fields: ['systemid', 'timeline', 'xlogpos', 'dbname'], rows: [['7000', '1', '0/16B3748', null]], command: 'IDENTIFY_SYSTEM' });
  t.same(await conn.read(), { tag: 'Q', body: Buffer.from('SHOW nothing\0') }, 'queries go one at a time');
  conn.send(errorResponse({ S: 'ERROR', C: '42704', M: 'unrecognized configuration parameter "nothing"' }), READY_IDLE);
  const err = await second.catch((e) => e);
  t.ok(err instanceof PgServerError);
  t.equal(err.code, '42704');
  t.same(await conn.read(), { tag: 'Q', body: Buffer.from('SHOW wal_segment_size\0') }, 'the connection goes on after an error');
  conn.send(rowDescription(['wal_segment_size']), dataRow(['16MB']), commandComplete('SHOW'), READY_IDLE);
  t.same((await third).rows, [['16MB']]);
  client.close();
  t.same(await conn.read(), { tag: 'X', body: Buffer.alloc(0) }, 'Terminate on close');
  await t.rejects(client.query('SELECT 1'), /connection to .* is closed/);
});

t.test('WAL push: greet, vote, pipelined appends, responses in order', async (t) => {
  const { client, conn } = await pushing();
  const info = client.greet(SERVER_INFO);
  t.same(await conn.readCopyData(), SERVER_INFO_BYTES, 'one CopyData carries exactly the 88-byte ServerInfo');
  // deliver the reply one byte at a time: framing must cope
  const reply = copyData(SAFEKEEPER_INFO_BYTES);
  for (const b of reply) conn.send(Buffer.from([b]));
  t.same(await info, SAFEKEEPER_INFO);

  const vote = client.vote({ nodeId: NODE_ID, vcl: 0x100n, epoch: 3n });
  const voteBytes = await conn.readCopyData();
  t.equal(voteBytes.length, 40);
  t.same(voteBytes.subarray(0, 24), NODE_ID_BYTES);
  conn.send(copyData(NODE_ID_BYTES));
  t.same(await vote, NODE_ID);

  const wal = (n: number) => new Uint8Array(n).fill(n);
  client.append({ senderId: NODE_ID, beginLsn: 0x100n, endLsn: 0x110n, restartLsn: 0n, commitLsn: 0n, wal: wal(16) });
  client.append({ senderId: NODE_ID, beginLsn: 0x110n, endLsn: 0x130n, restartLsn: 0n, commitLsn: 0x110n, wal: wal(32) });
  client.append({ senderId: NODE_ID, beginLsn: 0x130n, endLsn: 0x130n, restartLsn: 0n, commitLsn: 0x130n, wal: wal(0) });
  const a = await conn.readCopyData();
  t.equal(a.length, 56 + 16);
  t.equal(a.readBigUInt64LE(24), 0x100n, 'begin_lsn @24');
  t.equal((await conn.readCopyData()).length, 56 + 32);
  t.equal((await conn.readCopyData()).length, 56, 'heartbeat: header only');
  const r1 = client.nextResponse();
  conn.send(Buffer.concat([copyData(response(3n, 0x110n)), copyData(response(3n, 0x130n)), copyData(response(3n, 0x130n))]));
  t.equal((await r1).flushLsn, 0x110n);
  t.equal((await client.nextResponse()).flushLsn, 0x130n);
  const last = await client.nextResponse();
  t.same(last, { epoch: 3n, flushLsn: 0x130n, hsFeedback: { ts: 0n, xmin: 0xffffffffffffffffn, catalogXmin: 0xffffffffffffffffn } });
  await t.rejects(client.nextResponse(), /no append\(\) is waiting/);

  const ended = client.endStream();
  const end = await conn.readCopyData();
  t.equal(end.length, 56);
  t.equal(end.readBigUInt64LE(24), 0n, 'begin_lsn 0 ends the stream');
  t.same(end.subarray(0, 24), NODE_ID_BYTES, 'sent by the voted node id');
  t.same(await conn.read(), { tag: 'c', body: Buffer.alloc(0) }, 'then CopyDone');
  conn.send(COPY_DONE, commandComplete('START_WAL_PUSH'), READY_IDLE);
  await ended;
  t.throws(() => client.append({ senderId: NODE_ID, beginLsn: 1n, endLsn: 1n, restartLsn: 0n, commitLsn: 0n, wal: wal(0) }), /the WAL push stream is over/);

  // the connection is usable again
  const q = client.query('IDENTIFY_SYSTEM');
  await conn.read();
  conn.send(commandComplete('IDENTIFY_SYSTEM'), READY_IDLE);
  t.equal((await q).command, 'IDENTIFY_SYSTEM');
  client.close();
});

t.test('an append: small WAL copied into one write, larger WAL written as it is, corked with its headers', async (t) => {
  const { client, conn } = await voted();
  const socket = (client as unknown as { socket: import('node:net').Socket }).socket;
  const write = socket.write.bind(socket) as (chunk: Uint8Array) => boolean;
  const appendSeen = (wal: Uint8Array, begin: bigint): { chunk: Uint8Array; corked: number }[] => {
    const writes: { chunk: Uint8Array; corked: number }[] = [];
    socket.write = ((chunk: Uint8Array) => {
      writes.push({ chunk, corked: socket.writableCorked });
      return write(chunk);
    }) as typeof socket.write;
    client.append({ senderId: NODE_ID, beginLsn: begin, endLsn: begin + BigInt(wal.length), restartLsn: 0n, commitLsn: 0n, wal });
    socket.write = write as typeof socket.write;
    return writes;
  };
  const expect = (wal: Uint8Array, begin: bigint) => encodeSafeKeeperRequest({ senderId: NODE_ID, beginLsn: begin, endLsn: begin + BigInt(wal.length), restartLsn: 0n, commitLsn: 0n, wal });

  const small = new Uint8Array(COPY_WAL_BELOW - 1).fill(7);
  const s = appendSeen(small, 0x100n);
  t.equal(s.length, 1, 'below COPY_WAL_BELOW: one write');
  t.equal(s[0].chunk.length, 5 + 56 + small.length, 'of the whole CopyData message');
  t.same(await conn.readCopyData(), expect(small, 0x100n));

  const big = new Uint8Array(COPY_WAL_BELOW).fill(9);
  const b = appendSeen(big, 0x1000n);
  t.ok(b.some((w) => w.chunk === big), 'from COPY_WAL_BELOW on: the WAL array itself is handed to the socket');
  t.ok(b.every((w) => w.corked > 0), 'every part written while corked (one writev)');
  t.same(await conn.readCopyData(), expect(big, 0x1000n), 'one CopyData with the whole request');
  client.close();
});

t.test('an ErrorResponse rejects everything pending', async (t) => {
  const { client, conn } = await voted();
  client.append({ senderId: NODE_ID, beginLsn: 0x10n, endLsn: 0x11n, restartLsn: 0n, commitLsn: 0n, wal: Uint8Array.of(1) });
  client.append({ senderId: NODE_ID, beginLsn: 0x11n, endLsn: 0x12n, restartLsn: 0n, commitLsn: 0n, wal: Uint8Array.of(2) });
  const r1 = client.nextResponse();
  const r2 = client.nextResponse();
  await conn.readCopyData();
  await conn.readCopyData();
  conn.send(errorResponse({ S: 'ERROR', V: 'ERROR', C: '08P01', M: 'WAL request would leave a gap' }), READY_IDLE);
  for (const p of [r1, r2]) {
    const e = await p.catch((x) => x);
    t.ok(e instanceof PgServerError, 'rejected with the server error');
    t.equal(e.code, '08P01');
  }
  await t.rejects(client.nextResponse(), /WAL request would leave a gap/);
  t.throws(() => client.append({ senderId: NODE_ID, beginLsn: 0x12n, endLsn: 0x12n, restartLsn: 0n, commitLsn: 0n, wal: new Uint8Array(0) }), /stream is over: WAL request would leave a gap/);
  client.close();
});

t.test('a refused vote: the stored NodeId, then an error', async (t) => {
  const { client, conn } = await pushing();
  const info = client.greet(SERVER_INFO);
  await conn.readCopyData();
  conn.send(copyData(SAFEKEEPER_INFO_BYTES));
  await info;
  const vote = client.vote({ nodeId: { term: 1n, uuid: new Uint8Array(16) }, vcl: 0n, epoch: 1n });
  await conn.readCopyData();
  conn.send(copyData(NODE_ID_BYTES), errorResponse({ S: 'ERROR', C: '08P01', M: 'vote refused' }), READY_IDLE);
  t.same(await vote, NODE_ID, 'the reply is the stored (higher) vote');
  await t.rejects(client.greet(SERVER_INFO), /stream is over: vote refused/);
  client.close();
});

t.test('a closed socket rejects what is pending', async (t) => {
  const { client, conn } = await pushing();
  const info = client.greet(SERVER_INFO);
  await conn.readCopyData();
  conn.socket.destroy();
  await t.rejects(info, /connection to 127\.0\.0\.1:\d+ closed/);
  await t.rejects(client.vote({ nodeId: NODE_ID, vcl: 0n, epoch: 1n }), /stream is over: connection to .* closed/);
});

t.test('the server may end the stream by closing', async (t) => {
  const { client, conn } = await pushing();
  const ended = client.endStream();
  await conn.readCopyData();
  await conn.read();
  conn.socket.end();
  await ended;
  t.pass('endStream resolved');
});

t.test('protocol errors from the server end the connection', async (t) => {
  const { client, conn } = await pushing();
  conn.send(copyData(Buffer.alloc(40)));
  await conn.waitClosed();
  await t.rejects(client.greet(SERVER_INFO), /unexpected CopyData \(40 bytes\) from .*: no request is waiting for a reply/);

  const c2 = await pushing();
  const info = c2.client.greet(SERVER_INFO);
  await c2.conn.readCopyData();
  c2.conn.send(copyData(Buffer.alloc(100)));
  await t.rejects(info, /SafeKeeperInfo: invalid length: expected at least 128 bytes, got 100/);

  const c3 = await connected();
  const started = c3.client.startWalPush();
  await c3.conn.read();
  c3.conn.send(hex('48 00000007 00 0000'));
  await t.rejects(started, /answered with CopyOutResponse, expected CopyBothResponse/);

  const c4 = await pushing();
  await t.rejects(c4.client.startWalPush(), /busy \(copy\)/);
  c4.client.close();
});
