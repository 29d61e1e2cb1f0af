// A scripted PostgreSQL-speaking server on raw `net` bytes, for testing the
// proposer client without the daemon: the test reads what the client sent
// and writes back exact bytes.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';

export class FakeConn {
  private buf = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  private async take(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`client closed the connection (wanted ${n} bytes, have ${this.buf.length})`);
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** The untagged StartupMessage: raw bytes, protocol and parameters. */
  async readStartup(): Promise<{ raw: Buffer; protocol: number; params: Record<string, string> }> {
    const head = await this.take(4);
    const len = head.readInt32BE(0);
    const rest = await this.take(len - 4);
    const raw = Buffer.concat([head, rest]);
    const protocol = rest.readInt32BE(0);
    const parts = rest.subarray(4, rest.length - 2).toString('utf8').split('\0');
    const params: Record<string, string> = {};
    for (let i = 0; i + 1 < parts.length; i += 2) params[parts[i]] = parts[i + 1];
    return { raw, protocol, params };
  }

  /** One tagged message from the client. */
  async read(): Promise<{ tag: string; body: Buffer }> {
    const head = await this.take(5);
    const body = await this.take(head.readInt32BE(1) - 4);
    return { tag: String.fromCharCode(head[0]), body: Buffer.from(body) };
  }

  /** Read a CopyData and return its payload. */
  async readCopyData(): Promise<Buffer> {
    const m = await this.read();
    if (m.tag !== 'd') throw new Error(`expected CopyData, got '${m.tag}'`);
    return m.body;
  }

  send(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts));
  }

  /** Whether the client has closed its side. */
  async waitClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((resolve) => (this.waiting = resolve));
  }
}

export class FakeServer {
  private pending: FakeConn[] = [];
  private waiting: ((c: FakeConn) => void) | null = null;
  readonly conns: FakeConn[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static start(): Promise<FakeServer> {
    return new Promise((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const port = (server.address() as { port: number }).port;
        const fake = new FakeServer(server, port);
        server.on('connection', (s) => {
          const c = new FakeConn(s);
          fake.conns.push(c);
          if (fake.waiting) {
            const w = fake.waiting;
            fake.waiting = null;
            w(c);
          } else fake.pending.push(c);
        });
        resolve(fake);
      });
    });
  }

  accept(): Promise<FakeConn> {
    const c = this.pending.shift();
    if (c) return Promise.resolve(c);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ---- backend messages, byte by byte ----

const msg = (tag: string, body: Buffer): Buffer => {
  const head = Buffer.alloc(5);
  head[0] = tag.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};
const cstr = (s: string) => Buffer.from(s + '\0', 'utf8');
const i16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v);
  return b;
};
const i32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
};

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

export const AUTH_OK = hex('52 00000008 00000000');
export const AUTH_CLEARTEXT = hex('52 00000008 00000003');
export const READY_IDLE = hex('5a 00000005 49');
export const COPY_BOTH = hex('57 00000007 00 0000');
export const COPY_DONE = hex('63 00000004');

export const authMd5 = (salt: Buffer) => msg('R', Buffer.concat([i32(5), salt]));
export const authSasl = (mechanisms = ['SCRAM-SHA-256']) => msg('R', Buffer.concat([i32(10), ...mechanisms.map(cstr), cstr('')]));
export const authSaslContinue = (data: string) => msg('R', Buffer.concat([i32(11), Buffer.from(data)]));
export const authSaslFinal = (data: string) => msg('R', Buffer.concat([i32(12), Buffer.from(data)]));
export const authOther = (code: number) => msg('R', i32(code));
export const parameterStatus = (name: string, value: string) => msg('S', Buffer.concat([cstr(name), cstr(value)]));
export const backendKeyData = (pid: number, secret: number) => msg('K', Buffer.concat([i32(pid), i32(secret)]));
export const errorResponse = (fields: Record<string, string>) =>
  msg('E', Buffer.concat([...Object.entries(fields).map(([k, v]) => Buffer.concat([Buffer.from(k), cstr(v)])), Buffer.from([0])]));
export const noticeResponse = (fields: Record<string, string>) => Buffer.from([0x4e, ...errorResponse(fields).subarray(1)]);
export const rowDescription = (names: string[]) =>
  msg('T', Buffer.concat([i16(names.length), ...names.map((n) => Buffer.concat([cstr(n), i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0)]))]));
export const dataRow = (values: (string | null)[]) =>
  msg('D', Buffer.concat([i16(values.length), ...values.map((v) => (v === null ? i32(-1) : Buffer.concat([i32(Buffer.byteLength(v)), Buffer.from(v)])))]));
export const commandComplete = (tag: string) => msg('C', cstr(tag));
export const copyData = (payload: Uint8Array) => msg('d', Buffer.from(payload));

// ---- the server side of SCRAM-SHA-256 (RFC 5802), to check a client against ----

const hmac = (key: Buffer, data: string) => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

export class ScramServer {
  private readonly salt = randomBytes(16);
  /** Few iterations: the test checks the arithmetic, not the cost. */
  private readonly iterations = 16;
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  constructor(private readonly password: string) {}

  /** A SASLInitialResponse body → its mechanism and the server-first message. */
  first(body: Buffer): { mechanism: string; serverFirst: string } {
    const nul = body.indexOf(0);
    const mechanism = body.subarray(0, nul).toString();
    const clientFirst = body.subarray(nul + 5, nul + 5 + body.readInt32BE(nul + 1)).toString();
    if (!clientFirst.startsWith('n,,')) throw new Error(`unexpected GS2 header in "${clientFirst}"`);
    this.clientFirstBare = clientFirst.slice(3);
    const clientNonce = /(?:^|,)r=([^,]+)/.exec(this.clientFirstBare)?.[1];
    if (!clientNonce) throw new Error(`no nonce in "${clientFirst}"`);
    this.nonce = clientNonce + randomBytes(12).toString('base64');
    this.serverFirst = `r=${this.nonce},s=${this.salt.toString('base64')},i=${this.iterations}`;
    return { mechanism, serverFirst: this.serverFirst };
  }

  /** A SASLResponse body (client-final) → the server-final message; throws when the proof is wrong. */
  final(body: Buffer): string {
    const clientFinal = body.toString();
    const at = clientFinal.lastIndexOf(',p=');
    const withoutProof = clientFinal.slice(0, at);
    if (withoutProof !== `c=biws,r=${this.nonce}`) throw new Error(`unexpected client-final "${clientFinal}"`);
    const proof = Buffer.from(clientFinal.slice(at + 3), 'base64');
    const salted = pbkdf2Sync(this.password, this.salt, this.iterations, 32, 'sha256');
    const storedKey = sha256(hmac(salted, 'Client Key'));
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const clientKey = Buffer.from(proof.map((b, i) => b ^ signature[i]));
    if (!sha256(clientKey).equals(storedKey)) throw new Error('wrong client proof');
    return `v=${hmac(hmac(salted, 'Server Key'), authMessage).toString('base64')}`;
  }
}
