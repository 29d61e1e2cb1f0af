// A small PostgreSQL frontend for the quorum proposer's other connections:
// the physical replication connection to the primary, the recovery streams
// from peer safekeepers (application_name wal_proposer_recovery), and an
// ordinary SQL session. Simple queries, and COPY BOTH streaming whose
// CopyData payloads go to a handler as they arrive; the socket can be paused
// so that a fast sender cannot fill memory.
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { MessageFramer, type Framer } from '../hot/frames.js';
import {
  BackendTag,
  copyData,
  copyDone,
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
  startupMessage,
  terminate,
} from '../pq/frontend.js';
import { PgServerError, type QueryResult } from './client.js';
import { describeTarget, type ConnTarget } from './connstr.js';
import { SCRAM_SHA_256, ScramClient, saslInitialResponse, saslResponse } from './scram.js';

export interface PgClientOptions extends ConnTarget {
  /** Open a physical replication connection (replication=true). */
  replication?: boolean;
  /** More startup parameters (ztenantid, ztimelineid, ...). */
  params?: Record<string, string>;
}

/** How a COPY BOTH stream ended. */
export type CopyOutcome =
  /** Both sides sent CopyDone and the server is ready again; rows of a result that followed (end of a timeline). */
  | { kind: 'done'; rows: (string | null)[][] }
  /** The server reported an error (then ReadyForQuery, unless it was FATAL). */
  | { kind: 'error'; error: PgServerError }
  /** The connection closed or broke. */
  | { kind: 'closed'; error: Error };

export interface CopyHandlers {
  /** One CopyData payload from the server. */
  data(payload: Buffer): void;
  /** The server sent CopyDone: nothing more will come. The client answers with CopyDone itself. */
  serverDone?(): void;
  /** The stream is over. Called once. */
  end(outcome: CopyOutcome): void;
}

type State = 'startup' | 'idle' | 'query' | 'copy-starting' | 'copy' | 'copy-ending' | 'closed';

export class PgClient {
  readonly parameters = new Map<string, string>();
  backendKey: { pid: number; secret: number } | null = null;
  private state: State = 'startup';
  private readonly framer: Framer = new MessageFramer();
  private startup: { resolve(): void; reject(e: Error): void } | null = null;
  private current: { resolve(r: QueryResult): void; reject(e: Error): void; result: QueryResult; error: PgServerError | null } | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private copyStart: { resolve(): void; reject(e: Error): void } | null = null;
  private copy: { handlers: CopyHandlers; rows: (string | null)[][]; error: PgServerError | null; clientDone: boolean; serverDone: boolean } | null = null;
  private scram: ScramClient | null = null;
  private socketError: Error | null = null;
  private closeListeners: ((err: Error) => void)[] = [];
  private closeReason: Error | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly opts: PgClientOptions,
  ) {
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (e) => (this.socketError = e));
    socket.on('close', () => this.onSocketClose());
  }

  get where(): string {
    return describeTarget(this.opts);
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  static connect(opts: PgClientOptions): Promise<PgClient> {
    const socket = opts.host.startsWith('/') ? netConnect({ path: `${opts.host}/.s.PGSQL.${opts.port}` }) : netConnect({ host: opts.host, port: opts.port });
    socket.setNoDelay(true);
    const client = new PgClient(socket, opts);
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    return new Promise<PgClient>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.fail(new Error(`timed out after ${timeoutMs} ms connecting to ${client.where}`));
        socket.destroy();
      }, timeoutMs);
      client.startup = {
        resolve: () => {
          clearTimeout(timer);
          resolve(client);
        },
        reject: (e) => {
          clearTimeout(timer);
          socket.destroy();
          reject(e);
        },
      };
      socket.once('connect', () => {
        const params: Record<string, string> = { user: opts.user, database: opts.database };
        if (opts.replication) params.replication = 'true';
        if (opts.applicationName !== undefined) params.application_name = opts.applicationName;
        if (opts.options !== undefined) params.options = opts.options;
        Object.assign(params, opts.params ?? {});
        socket.write(startupMessage(params));
      });
    });
  }

  /** Called once when the connection is gone (after close() too). */
  onClose(listener: (err: Error) => void): void {
    if (this.closeReason) listener(this.closeReason);
    else this.closeListeners.push(listener);
  }

  /** A simple query; queries run one at a time in call order. */
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
   * Send a query that answers with CopyBothResponse (START_REPLICATION).
   * Resolves once the stream is open; an error before it rejects. From then
   * on the handlers get the stream.
   */
  async copyBoth(sql: string, handlers: CopyHandlers): Promise<void> {
    await this.chain;
    return new Promise<void>((resolve, reject) => {
      if (this.state !== 'idle') return reject(this.unusable(sql));
      this.state = 'copy-starting';
      this.copyStart = { resolve, reject };
      this.copy = { handlers, rows: [], error: null, clientDone: false, serverDone: false };
      this.socket.write(queryMessage(sql));
    });
  }

  /** Send one CopyData payload; false when the socket buffer is full. */
  send(payload: Uint8Array): boolean {
    if (this.state !== 'copy' || !this.copy || this.copy.clientDone) return true;
    return this.socket.write(copyData(payload));
  }

  /** End our side of the COPY (CopyDone). The handlers' end() follows once the server has finished too. */
  finishCopy(): void {
    const c = this.copy;
    if (!c || c.clientDone || this.state === 'closed') return;
    c.clientDone = true;
    if (this.state === 'copy') this.socket.write(copyDone());
  }

  /** Stop reading from the socket (TCP backpressure reaches the sender). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (this.state !== 'closed') this.socket.resume();
  }

  /** Terminate and close. Pending work is rejected. */
  close(): void {
    if (this.state === 'closed') return;
    if (!this.socket.destroyed) this.socket.end(terminate());
    this.fail(new Error(`connection to ${this.where} closed by the client`));
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  // ---- incoming ----

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    try {
      this.framer.push(chunk);
      for (let m = this.framer.next(); m; m = this.framer.next()) {
        this.handle(m.tag, m.body);
        if ((this.state as State) === 'closed') return;
      }
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
      this.socket.destroy();
    }
  }

  private handle(tag: number, body: Buffer): void {
    switch (tag) {
      case BackendTag.CopyData:
        if (this.state !== 'copy' && this.state !== 'copy-ending') throw new Error(`unexpected CopyData from ${this.where} while ${this.state}`);
        if (this.copy && !this.copy.serverDone) this.copy.handlers.data(body);
        return;
      case BackendTag.ErrorResponse:
        return this.onError(new PgServerError(decodeErrorFields(body)));
      case BackendTag.NoticeResponse:
      case BackendTag.BackendKeyData:
        if (tag === BackendTag.BackendKeyData) this.backendKey = decodeBackendKeyData(body);
        return;
      case BackendTag.ParameterStatus: {
        const { name, value } = decodeParameterStatus(body);
        this.parameters.set(name, value);
        return;
      }
      case BackendTag.Authentication:
        return this.onAuthentication(body);
      case BackendTag.ReadyForQuery:
        decodeReadyForQuery(body);
        return this.onReady();
      case BackendTag.RowDescription: {
        const fields = decodeRowDescription(body).map((f) => f.name);
        if (this.state === 'query' && this.current) this.current.result.fields = fields;
        return;
      }
      case BackendTag.DataRow: {
        const row = decodeDataRow(body);
        if (this.state === 'query' && this.current) this.current.result.rows.push(row);
        else if (this.copy) this.copy.rows.push(row);
        return;
      }
      case BackendTag.CommandComplete: {
        const command = decodeCommandComplete(body);
        if (this.state === 'query' && this.current) this.current.result.command = command;
        return;
      }
      case BackendTag.EmptyQueryResponse:
        return;
      case BackendTag.CopyBothResponse:
        decodeCopyResponse(body);
        if (this.state !== 'copy-starting') throw new Error(`unexpected CopyBothResponse from ${this.where} while ${this.state}`);
        this.state = 'copy';
        this.copyStart?.resolve();
        this.copyStart = null;
        return;
      case BackendTag.CopyOutResponse:
      case BackendTag.CopyInResponse:
        throw new Error(`${this.where} answered with ${tag === BackendTag.CopyOutResponse ? 'CopyOutResponse' : 'CopyInResponse'}, expected CopyBothResponse`);
      case BackendTag.CopyDone: {
        const c = this.copy;
        if (!c || (this.state !== 'copy' && this.state !== 'copy-ending')) throw new Error(`unexpected CopyDone from ${this.where} while ${this.state}`);
        c.serverDone = true;
        this.state = 'copy-ending';
        c.handlers.serverDone?.();
        if (!c.clientDone) {
          c.clientDone = true;
          this.socket.write(copyDone());
        }
        return;
      }
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
        const inner = createHash('md5').update(this.needPassword()).update(this.opts.user).digest('hex');
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
    if (this.opts.password === undefined) throw new Error(`${this.where} asks for a password and none was given (password=... in the connection string, or PGPASSWORD)`);
    return this.opts.password;
  }

  private onReady(): void {
    const state = this.state;
    this.state = 'idle';
    if (state === 'startup') {
      const s = this.startup;
      this.startup = null;
      s?.resolve();
    } else if (state === 'query') {
      const q = this.current!;
      this.current = null;
      if (q.error) q.reject(q.error);
      else q.resolve(q.result);
    } else if (state === 'copy-starting' || state === 'copy' || state === 'copy-ending') {
      // The end of a COPY (after both CopyDones, or after an error).
      const c = this.copy;
      this.copy = null;
      const start = this.copyStart;
      this.copyStart = null;
      if (start) {
        start.reject(c?.error ?? new Error(`${this.where} did not start COPY BOTH`));
        return;
      }
      if (c) c.handlers.end(c.error ? { kind: 'error', error: c.error } : { kind: 'done', rows: c.rows });
    }
  }

  private onError(err: PgServerError): void {
    if (this.state === 'startup') {
      const s = this.startup;
      this.startup = null;
      s?.reject(err);
      return;
    }
    if (this.state === 'query' && this.current) {
      this.current.error = err;
      return;
    }
    if (this.copy) this.copy.error = err;
    if (this.state === 'copy' || this.state === 'copy-ending') this.state = 'copy-ending';
  }

  private onSocketClose(): void {
    const cause = this.socketError ? `: ${this.socketError.message}` : '';
    this.fail(new Error(`connection to ${this.where} closed${this.state === 'startup' ? ' during startup' : ''}${cause}`));
  }

  private fail(err: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeReason = err;
    const startup = this.startup;
    const current = this.current;
    const copyStart = this.copyStart;
    const copy = this.copy;
    this.startup = this.current = this.copyStart = this.copy = null;
    startup?.reject(err);
    current?.reject(err);
    if (copyStart) copyStart.reject(copy?.error ?? err);
    else if (copy) copy.handlers.end(copy.error ? { kind: 'error', error: copy.error } : { kind: 'closed', error: err });
    this.framer.dispose();
    const listeners = this.closeListeners;
    this.closeListeners = [];
    for (const l of listeners) l(err);
  }

  private unusable(what: string): Error {
    if (this.state === 'closed') return new Error(`${what}: the connection to ${this.where} is closed${this.closeReason ? ` (${this.closeReason.message})` : ''}`);
    return new Error(`${what}: the connection to ${this.where} is busy (${this.state})`);
  }
}
