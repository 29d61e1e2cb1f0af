// A byte-level PostgreSQL client for tests: sends exactly the bytes it is
// given (well-formed or not) and parses what the server answers.
import { connect, type Socket } from 'node:net';

export interface RawMessage {
  tag: string;
  body: Buffer;
}

export function startupPacket(params: Record<string, string>, protocol = 0x30000): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  const body = Buffer.concat([...parts, Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(protocol, 4);
  return Buffer.concat([head, body]);
}

export function tagged(tag: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = tag.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  out.set(body, 5);
  return out;
}

export function query(sql: string): Buffer {
  return tagged('Q', Buffer.from(sql + '\0', 'utf8'));
}

export function copyDataMsg(payload: Uint8Array): Buffer {
  return tagged('d', payload);
}

export const TERMINATE = tagged('X', new Uint8Array(0));

/** The fields of an ErrorResponse/NoticeResponse, keyed by field code. */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 0;
  while (p < body.length && body[p] !== 0) {
    const code = String.fromCharCode(body[p]);
    const end = body.indexOf(0, p + 1);
    out[code] = body.subarray(p + 1, end).toString('utf8');
    p = end + 1;
  }
  return out;
}

export class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      const done = () => {
        this.ended = true;
        this.wake();
        resolve();
      };
      socket.once('close', done);
      socket.once('end', done);
    });
    socket.on('error', () => {});
  }

  /** A client over a socket already connected (e.g. a TLS one). */
  static over(socket: Socket): RawClient {
    return new RawClient(socket);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host }, () => {
        s.off('error', reject);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  private async waitFor(n: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) return false;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  get isClosed(): boolean {
    return this.ended;
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Send an SSLRequest and return the one-byte answer. */
  async sslRequest(code = 80877103): Promise<string> {
    const b = Buffer.alloc(8);
    b.writeInt32BE(8, 0);
    b.writeInt32BE(code, 4);
    this.write(b);
    if (!(await this.waitFor(1, 5000))) throw new Error('closed before the SSL answer');
    const c = String.fromCharCode(this.buf[0]);
    this.buf = this.buf.subarray(1);
    return c;
  }

  /** Next message, or null when the server closed the connection first. */
  async read(timeoutMs = 10_000): Promise<RawMessage | null> {
    if (!(await this.waitFor(5, timeoutMs))) return null;
    const len = this.buf.readInt32BE(1);
    if (!(await this.waitFor(1 + len, timeoutMs))) return null;
    const m = { tag: String.fromCharCode(this.buf[0]), body: Buffer.from(this.buf.subarray(5, 1 + len)) };
    this.buf = this.buf.subarray(1 + len);
    return m;
  }

  /** Messages up to and including the first with one of `tags` (throws if the connection ends first). */
  async readUntil(tags: string, timeoutMs = 10_000): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    for (;;) {
      const m = await this.read(timeoutMs);
      if (!m) throw new Error(`connection closed before ${tags}; got ${out.map((x) => x.tag).join('')}`);
      out.push(m);
      if (tags.includes(m.tag)) return out;
    }
  }

  /** Start-up with trust auth; returns the messages up to ReadyForQuery. */
  async startup(params: Record<string, string>): Promise<RawMessage[]> {
    this.write(startupPacket(params));
    return this.readUntil('ZE');
  }

  /** Read until an ErrorResponse and return its fields. */
  async expectError(timeoutMs = 10_000): Promise<Record<string, string>> {
    const ms = await this.readUntil('E', timeoutMs);
    return errorFields(ms[ms.length - 1].body);
  }

  /** Wait until the server has closed the connection (throws on timeout). */
  async expectClosed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('server did not close the connection')), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
