// A minimal PostgreSQL-protocol server for tests: the start-up handshake
// (SSLRequest → 'N', AuthenticationOk, ParameterStatus, ReadyForQuery), then
// every simple Query goes to handleReplicationQuery() with one WalSource.
// It stands in for the daemon's connection loop, which owns this job in
// production; it is deliberately small.
import { createServer, type Server, type Socket } from 'node:net';
import type { ClientMessage, ReplicationConnection } from '../../src/replication/connection.js';
import { handleReplicationQuery, type ReplicationOptions } from '../../src/replication/handler.js';
import { errorResponse, readyForQuery } from '../../src/pq/backend.js';
import type { WalSource } from '../../src/replication/source.js';
import { message } from '../../src/pq/buffer.js';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;

export interface HarnessOptions extends Omit<ReplicationOptions, 'shutdown'> {
  source: WalSource;
  serverVersion?: string;
}

export interface SessionRecord {
  params: Record<string, string>;
  queries: string[];
  outcomes: string[];
  closed: boolean;
}

function parameterStatus(name: string, value: string): Buffer {
  return message(0x53, (w) => void w.cstring(name).cstring(value));
}

function authenticationOk(): Buffer {
  return message(0x52, (w) => void w.i32(0));
}

class Session implements ReplicationConnection {
  startupParams: Record<string, string> = {};
  readonly remoteAddress: string;
  private buf: Buffer = Buffer.alloc(0);
  private started = false;
  private readonly inbox: ClientMessage[] = [];
  private ended = false;
  private wake: (() => void) | null = null;
  readonly record: SessionRecord = { params: {}, queries: [], outcomes: [], closed: false };
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(
    readonly socket: Socket,
    private readonly opts: HarnessOptions,
    private readonly shutdown: AbortSignal,
  ) {
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    this.finished = new Promise((r) => (this.resolveFinished = r));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => {
      this.onEnd();
      this.record.closed = true;
      this.resolveFinished();
    });
    socket.on('error', () => {});
  }

  send(bytes: Uint8Array): boolean {
    if (this.socket.destroyed) return true;
    return this.socket.write(bytes);
  }

  drain(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  nextMessage(signal?: AbortSignal): Promise<ClientMessage | null> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const attempt = (): boolean => {
        if (this.inbox.length) resolve(this.inbox.shift()!);
        else if (this.ended) resolve(null);
        else return false;
        return true;
      };
      if (attempt()) return;
      const onAbort = (): void => {
        this.wake = null;
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.wake = () => {
        if (attempt()) {
          this.wake = null;
          signal?.removeEventListener('abort', onAbort);
        }
      };
    });
  }

  private onEnd(): void {
    this.ended = true;
    this.wake?.();
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (!this.started && !this.startup()) return;
    while (this.buf.length >= 5) {
      const len = this.buf.readInt32BE(1);
      if (this.buf.length < 1 + len) break;
      this.inbox.push({ tag: this.buf[0], body: Buffer.from(this.buf.subarray(5, 1 + len)) });
      this.buf = this.buf.subarray(1 + len);
    }
    this.wake?.();
  }

  /** Handle start-up packets; true once the StartupMessage was answered. */
  private startup(): boolean {
    while (this.buf.length >= 8) {
      const len = this.buf.readInt32BE(0);
      if (this.buf.length < len) return false;
      const code = this.buf.readInt32BE(4);
      const body = this.buf.subarray(8, len);
      this.buf = this.buf.subarray(len);
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        this.socket.write('N');
        continue;
      }
      if (code === CANCEL_REQUEST || code !== PROTOCOL_3) {
        this.socket.destroy();
        return false;
      }
      const parts = body.toString('utf8').split('\0');
      for (let i = 0; i + 1 < parts.length && parts[i] !== ''; i += 2) this.startupParams[parts[i]] = parts[i + 1];
      this.record.params = { ...this.startupParams };
      const status: [string, string][] = [
        ['application_name', this.startupParams.application_name ?? ''],
        ['client_encoding', 'SQL_ASCII'],
        ['DateStyle', 'ISO, MDY'],
        ['integer_datetimes', 'on'],
        ['server_encoding', 'SQL_ASCII'],
        ['server_version', this.opts.serverVersion ?? '15.18 (walkeeper test)'],
        ['standard_conforming_strings', 'on'],
        ['TimeZone', 'Etc/UTC'],
      ];
      this.socket.write(Buffer.concat([authenticationOk(), ...status.map(([k, v]) => parameterStatus(k, v)), readyForQuery()]));
      this.started = true;
      void this.queryLoop();
      return true;
    }
    return false;
  }

  private async queryLoop(): Promise<void> {
    const { source, ...opts } = this.opts;
    for (;;) {
      const msg = await this.nextMessage();
      if (!msg) break;
      if (msg.tag === 0x51) {
        const nul = msg.body.indexOf(0);
        const sql = Buffer.from(msg.body.subarray(0, nul < 0 ? msg.body.length : nul)).toString('utf8');
        this.record.queries.push(sql);
        const outcome = await handleReplicationQuery(sql, this, source, { ...opts, shutdown: this.shutdown });
        this.record.outcomes.push(outcome);
        if (outcome === 'close') break;
      } else if (msg.tag === 0x58) {
        break;
      } else if (msg.tag === 0x64 || msg.tag === 0x63 || msg.tag === 0x66) {
        // Left over from a COPY that ended with an error: ignored, as PostgreSQL does.
      } else {
        this.send(errorResponse({ severity: 'FATAL', code: '08P01', message: `invalid frontend message type ${msg.tag}` }));
        break;
      }
    }
    this.socket.end();
  }
}

export class ReplicationTestServer {
  readonly sessions: Session[] = [];
  private readonly shutdownController = new AbortController();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(opts: HarnessOptions): Promise<ReplicationTestServer> {
    const holder: { self?: ReplicationTestServer } = {};
    const server = createServer((socket) => {
      const self = holder.self!;
      self.sessions.push(new Session(socket, opts, self.shutdownController.signal));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    holder.self = new ReplicationTestServer(server, port);
    return holder.self;
  }

  get records(): SessionRecord[] {
    return this.sessions.map((s) => s.record);
  }

  /** Shut down as the daemon would: streams end with "COPY 0", then the sockets close. */
  async shutdown(): Promise<void> {
    this.shutdownController.abort();
    await this.close();
  }

  /** Stop listening; connections still open after `graceMs` are cut. */
  async close(graceMs = 5000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const deadline = setTimeout(() => {
      for (const s of this.sessions) s.socket.destroy();
    }, graceMs);
    await Promise.all(this.sessions.map((s) => s.finished));
    clearTimeout(deadline);
    await closed;
  }
}
