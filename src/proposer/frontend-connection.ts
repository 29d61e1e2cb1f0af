// What the proposer's PostgreSQL frontends share: connecting (TCP or Unix
// socket, TLS as libpq's sslmode says, tls-client.ts) under a time limit,
// the StartupMessage, answering authentication
// (cleartext, MD5, SCRAM-SHA-256), ParameterStatus/BackendKeyData/notices,
// ErrorResponse → PgServerError, simple queries one at a time, opening
// COPY BOTH, and tearing everything down when the socket closes. A subclass
// handles CopyData/CopyDone itself (the per-message hot path stays one call
// from the framer loop) and says what its COPY state does on an error, on
// ReadyForQuery and when the connection is gone.
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { MessageFramer, type Framer } from '../hot/frames.js';
import {
  BackendTag,
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeCopyResponse,
  decodeDataRow,
  decodeErrorFields,
  decodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
  passwordMessage,
  query as queryMessage,
  sslRequest,
  startupMessage,
  terminate,
} from '../pq/frontend.js';
import { describeTarget } from './connstr.js';
import { SCRAM_SHA_256, ScramClient, saslInitialResponse, saslResponse } from './scram.js';
import { sslAnswer, startTls, tryTheOtherWay, tlsAttempts, type SslAnswer, type TlsClientSettings } from './tls-client.js';

/**
 * The buffer every plain connection reads into. Safe to share: reads run one
 * at a time on the event loop and each is copied into its connection's
 * framer before the next.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

export interface QueryResult {
  fields: string[];
  rows: (string | null)[][];
  command: string;
}

/** An ErrorResponse from the server. */
export class PgServerError extends Error {
  override readonly name = 'PgServerError';
  readonly severity: string;
  /** SQLSTATE */
  readonly code: string;

  constructor(readonly fields: Record<string, string>) {
    super(fields.M ?? 'server error without a message');
    this.severity = fields.V ?? fields.S ?? 'ERROR';
    this.code = fields.C ?? '';
  }
}

export interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
}

export type ConnState = 'startup' | 'idle' | 'query' | 'copy-starting' | 'copy' | 'copy-ending' | 'closed';
export type CopyState = 'copy-starting' | 'copy' | 'copy-ending';

/** Where to connect and as whom. */
export interface FrontendTarget {
  /** Host name or address, or a directory holding the Unix socket (starts with "/"). */
  host: string;
  port: number;
  user: string;
  password?: string;
  /** Limit on connect + startup until ReadyForQuery (default 10 s), per attempt. */
  connectTimeoutMs?: number;
  /** TLS as libpq's sslmode etc. say; none when absent. */
  tls?: TlsClientSettings;
  /** The name the server's certificate must carry under sslmode=verify-full (default: host). */
  serverName?: string;
}

export abstract class FrontendConnection {
  /** ParameterStatus values the server sent. */
  readonly parameters = new Map<string, string>();
  backendKey: { pid: number; secret: number } | null = null;

  protected state: ConnState = 'startup';
  /** The plain socket, then the TLS one once the handshake is done; set by start(). */
  protected socket!: Socket;
  /** Whether this attempt speaks TLS (after the handshake). */
  private usedTls = false;
  /** The query that should answer with CopyBothResponse; a subclass decides how its failure is reported. */
  protected copyStart: Waiter<void> | null = null;
  /** Why the connection is gone. */
  protected closeReason: Error | null = null;
  private readonly framer: Framer = new MessageFramer();
  private startup: Waiter<void> | null = null;
  private current: (Waiter<QueryResult> & { result: QueryResult; error: PgServerError | null }) | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private scram: ScramClient | null = null;
  private socketError: Error | null = null;
  /** The StartupMessage's parameters besides `user`; set by start(). */
  private startupParams: Record<string, string> = {};
  /** SSLRequest was sent: the next bytes read are its answer. */
  private awaitingSslAnswer = false;

  protected constructor(
    private readonly target: FrontendTarget,
    /** Where a missing password should come from, for the error that says so. */
    private readonly passwordHint = '',
  ) {}

  /**
   * Open a connection made by `make` (a fresh one per attempt) and start it
   * up with `params`: over TLS or not, retried the other way when libpq
   * would (sslmode allow and prefer).
   */
  protected static async establish<C extends FrontendConnection>(target: Pick<FrontendTarget, 'host' | 'tls'>, make: () => C, params: Record<string, string>): Promise<C> {
    const attempts = tlsAttempts(target.tls, target.host);
    for (let i = 0; ; i++) {
      const conn = make();
      try {
        conn.startupParams = params;
        return await conn.start(attempts[i]);
      } catch (err) {
        if (i + 1 >= attempts.length || !tryTheOtherWay(target.tls, conn.usedTls, err, err instanceof PgServerError)) throw err;
      }
    }
  }

  get where(): string {
    return describeTarget(this.target);
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /**
   * Send the StartupMessage (`user` first, then startupParams) once connected;
   * resolves at the first ReadyForQuery. Failure or the time limit destroys the socket.
   */
  private start(tls: boolean): Promise<this> {
    const { host, port } = this.target;
    // Reads land in one reused buffer and go straight to the framer (which copies them): no
    // Buffer per read and no Readable stream between the socket and the protocol.
    const onread = { buffer: READ_BUFFER, callback: (n: number, buf: Buffer): boolean => this.onRead(buf.subarray(0, n)) };
    const raw = host.startsWith('/') ? netConnect({ path: `${host}/.s.PGSQL.${port}`, onread }) : netConnect({ host, port, onread });
    raw.setNoDelay(true);
    this.watch(raw);
    const timeoutMs = this.target.connectTimeoutMs ?? 10_000;
    return new Promise<this>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new Error(`timed out after ${timeoutMs} ms connecting to ${this.where}`));
        this.socket.destroy();
      }, timeoutMs);
      this.startup = {
        resolve: () => {
          clearTimeout(timer);
          resolve(this);
        },
        reject: (e) => {
          clearTimeout(timer);
          this.socket.destroy();
          reject(e);
        },
      };
      raw.once('connect', () => {
        if (!tls || !this.target.tls) return this.sendStartup();
        this.awaitingSslAnswer = true;
        raw.write(sslRequest());
      });
    });
  }

  private sendStartup(): void {
    this.socket.write(startupMessage({ user: this.target.user, ...this.startupParams }));
  }

  /** Bytes read on the plain socket; false stops reading it (TLS takes it over). */
  private onRead(chunk: Buffer): boolean {
    if (!this.awaitingSslAnswer) {
      this.onData(chunk);
      return true;
    }
    this.awaitingSslAnswer = false;
    const raw = this.socket;
    const settings = this.target.tls!;
    let answer: SslAnswer;
    try {
      answer = sslAnswer(chunk, settings, this.where);
    } catch (err) {
      this.fail(err as Error);
      raw.destroy();
      return false;
    }
    if (answer === 'plain') this.sendStartup();
    else if (answer === 'error') this.onData(chunk);
    else {
      startTls(raw, settings, this.target.serverName ?? this.target.host, this.where).then(
        (secure) => {
          if (this.state === 'closed') {
            secure.destroy();
            return;
          }
          this.usedTls = true;
          this.watch(secure);
          secure.on('data', (data: Buffer) => this.onData(data));
          this.sendStartup();
        },
        (err: Error) => {
          this.fail(err);
          raw.destroy();
        },
      );
    }
    return answer !== 'tls';
  }

  private watch(socket: Socket): void {
    this.socket = socket;
    socket.on('error', (e) => (this.socketError = e));
    socket.on('close', () => this.onSocketClose());
  }

  /** A simple query; queries run one at a time, in call order. */
  query(sql: string): Promise<QueryResult> {
    const run = (): Promise<QueryResult> =>
      new Promise<QueryResult>((resolve, reject) => {
        if (this.state !== 'idle') return reject(this.unusable(sql));
        this.state = 'query';
        this.current = { resolve, reject, result: { fields: [], rows: [], command: '' }, error: null };
        this.socket.write(queryMessage(sql));
      });
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }

  /**
   * Send `sql`, which should answer with CopyBothResponse, after the queries
   * already asked; `prepare` sets up the subclass's COPY state first.
   */
  protected async openCopy(sql: string, prepare: () => void): Promise<void> {
    await this.chain;
    return new Promise<void>((resolve, reject) => {
      if (this.state !== 'idle') return reject(this.unusable(sql));
      this.state = 'copy-starting';
      this.copyStart = { resolve, reject };
      prepare();
      this.socket.write(queryMessage(sql));
    });
  }

  /** Terminate and close; everything pending is rejected. */
  close(): void {
    if (this.state === 'closed') return;
    if (!this.socket.destroyed) this.socket.end(terminate());
    this.fail(new Error(`connection to ${this.where} closed by the client`));
  }

  // ---- what a subclass adds ----

  /** One backend message: CopyData and CopyDone here, everything else to handleOther(). */
  protected abstract handle(tag: number, body: Buffer): void;
  /** An ErrorResponse after start-up (a running query has already recorded it). */
  protected abstract copyError(err: PgServerError): void;
  /** ReadyForQuery after a COPY (or its failed start); the state is already idle. */
  protected abstract copyReady(was: CopyState): void;
  /** The connection is gone: reject what the subclass still has pending. */
  protected abstract failPending(err: Error): void;

  /** A query-result message while no query runs; by default a protocol error. */
  protected resultOutsideQuery(what: 'RowDescription' | 'DataRow' | 'EmptyQueryResponse', _body: Buffer): void {
    throw new Error(`unexpected ${what} from ${this.where} while ${this.state}`);
  }

  // ---- incoming ----

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    try {
      this.framer.push(chunk);
      for (let m = this.framer.next(); m; m = this.framer.next()) {
        this.handle(m.tag, m.body);
        if ((this.state as ConnState) === 'closed') return;
      }
    } catch (e) {
      // Unparseable input: nothing after it can be trusted.
      this.fail(e instanceof Error ? e : new Error(String(e)));
      this.socket.destroy();
    }
  }

  /** Every message but CopyData and CopyDone. */
  protected handleOther(tag: number, body: Buffer): void {
    switch (tag) {
      case BackendTag.ErrorResponse:
        return this.onServerError(new PgServerError(decodeErrorFields(body)));
      case BackendTag.NoticeResponse:
        decodeErrorFields(body, 'NoticeResponse');
        return;
      case BackendTag.ParameterStatus: {
        const { name, value } = decodeParameterStatus(body);
        this.parameters.set(name, value);
        return;
      }
      case BackendTag.BackendKeyData:
        this.backendKey = decodeBackendKeyData(body);
        return;
      case BackendTag.Authentication:
        return this.onAuthentication(body);
      case BackendTag.ReadyForQuery:
        decodeReadyForQuery(body);
        return this.onReady();
      case BackendTag.RowDescription:
        if (this.current) this.current.result.fields = decodeRowDescription(body).map((f) => f.name);
        else this.resultOutsideQuery('RowDescription', body);
        return;
      case BackendTag.DataRow:
        if (this.current) this.current.result.rows.push(decodeDataRow(body));
        else this.resultOutsideQuery('DataRow', body);
        return;
      case BackendTag.CommandComplete: {
        const command = decodeCommandComplete(body);
        if (this.current) this.current.result.command = command;
        return;
      }
      case BackendTag.EmptyQueryResponse:
        if (!this.current) this.resultOutsideQuery('EmptyQueryResponse', body);
        return;
      case BackendTag.CopyBothResponse: {
        decodeCopyResponse(body);
        if (this.state !== 'copy-starting') throw new Error(`unexpected CopyBothResponse from ${this.where} while ${this.state}`);
        this.state = 'copy';
        const w = this.copyStart;
        this.copyStart = null;
        w?.resolve();
        return;
      }
      case BackendTag.CopyOutResponse:
      case BackendTag.CopyInResponse:
        throw new Error(`${this.where} answered with ${tag === BackendTag.CopyOutResponse ? 'CopyOutResponse' : 'CopyInResponse'}, expected CopyBothResponse`);
      default:
        throw new Error(`unexpected message type '${String.fromCharCode(tag)}' (0x${tag.toString(16)}) from ${this.where}`);
    }
  }

  private onAuthentication(body: Buffer): void {
    if (this.state !== 'startup') throw new Error(`unexpected Authentication from ${this.where} while ${this.state}`);
    const auth = decodeAuthentication(body);
    switch (auth.kind) {
      case 'ok':
        return;
      case 'cleartext-password':
        this.socket.write(passwordMessage(this.needPassword()));
        return;
      case 'md5-password': {
        const inner = createHash('md5').update(this.needPassword()).update(this.target.user).digest('hex');
        const outer = createHash('md5').update(inner).update(auth.salt).digest('hex');
        this.socket.write(passwordMessage('md5' + outer));
        return;
      }
      case 'sasl': {
        if (!auth.mechanisms.includes(SCRAM_SHA_256)) {
          throw new Error(`${this.where} offers SASL mechanisms ${auth.mechanisms.join(', ')}; only ${SCRAM_SHA_256} is supported`);
        }
        this.scram = new ScramClient(this.needPassword());
        this.socket.write(saslInitialResponse(SCRAM_SHA_256, this.scram.first()));
        return;
      }
      case 'sasl-continue':
        if (!this.scram) throw new Error(`${this.where} sent SASL data before SASL started`);
        this.socket.write(saslResponse(this.scram.final(Buffer.from(auth.data).toString('utf8'))));
        return;
      case 'sasl-final':
        if (!this.scram) throw new Error(`${this.where} sent SASL data before SASL started`);
        this.scram.verify(Buffer.from(auth.data).toString('utf8'));
        return;
      default:
        throw new Error(`${this.where} asks for an unsupported authentication method (code ${auth.code})`);
    }
  }

  private needPassword(): string {
    if (this.target.password === undefined) {
      throw new Error(`${this.where} asks for a password and none was given${this.passwordHint ? ` (${this.passwordHint})` : ''}`);
    }
    return this.target.password;
  }

  private onReady(): void {
    const state = this.state;
    this.state = 'idle';
    if (state === 'startup') {
      const w = this.startup;
      this.startup = null;
      w?.resolve();
    } else if (state === 'query') {
      const q = this.current!;
      this.current = null;
      if (q.error) q.reject(q.error);
      else q.resolve(q.result);
    } else if (state !== 'idle') {
      this.copyReady(state as CopyState);
    }
  }

  /** During start-up the error fails the connect; in a query it fails that query at ReadyForQuery. */
  private onServerError(err: PgServerError): void {
    if (this.state === 'startup') {
      const w = this.startup;
      this.startup = null;
      w?.reject(err);
      return;
    }
    if (this.current) this.current.error = err;
    this.copyError(err);
  }

  protected onSocketClose(): void {
    if (this.state === 'closed') return;
    const cause = this.socketError ? `: ${this.socketError.message}` : '';
    this.fail(new Error(`connection to ${this.where} closed${this.state === 'startup' ? ' during startup' : ''}${cause}`));
  }

  protected fail(err: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeReason = err;
    const startup = this.startup;
    const current = this.current;
    this.startup = this.current = null;
    startup?.reject(err);
    current?.reject(err);
    this.failPending(err);
    this.framer.dispose();
  }

  // ---- guards ----

  protected unusable(what: string): Error {
    if (this.state === 'closed') return new Error(`${what}: the connection to ${this.where} is closed${this.closeReason ? ` (${this.closeReason.message})` : ''}`);
    return new Error(`${what}: the connection to ${this.where} is busy (${this.state})`);
  }
}
