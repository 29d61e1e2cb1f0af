// A WAL push client: connects to a safekeeper as a PostgreSQL frontend,
// runs simple queries, and speaks the WAL push protocol v1 inside COPY BOTH
// (one protocol message per CopyData). Used by tests now and by a quorum
// proposer later. Replies on the push channel are untagged, so the client
// remembers what each message it sent expects back, in order.
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
import {
  decodeNodeId,
  decodeSafeKeeperInfo,
  decodeSafeKeeperResponse,
  encodeRequestVote,
  encodeSafeKeeperRequest,
  encodeServerInfo,
} from '../protocol/messages.js';
import { zeroNodeId } from '../protocol/node-id.js';
import type { NodeId, RequestVote, SafeKeeperInfo, SafeKeeperRequest, SafeKeeperResponse, ServerInfo } from '../protocol/types.js';

export interface ProposerConnectOptions {
  host: string;
  port: number;
  /** 32 hex digits. */
  tenantId: string;
  /** 32 hex digits. */
  timelineId: string;
  applicationName?: string;
  /** For cleartext or MD5 password authentication. */
  password?: string;
  /** Startup `user` (default "walproposer"). */
  user?: string;
  /** Limit on TCP connect + startup until ReadyForQuery (default 10 s). */
  connectTimeoutMs?: number;
}

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

type State = 'startup' | 'idle' | 'query' | 'copy-starting' | 'copy' | 'copy-ending' | 'closed';

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
}

/** What the next CopyData from the server answers. */
type Expected =
  | { kind: 'info'; waiter: Waiter<SafeKeeperInfo> }
  | { kind: 'vote'; waiter: Waiter<NodeId> }
  | { kind: 'response' };

const HEX32 = /^[0-9a-fA-F]{32}$/;

export class ProposerClient {
  /** ParameterStatus values the server sent. */
  readonly parameters = new Map<string, string>();
  backendKey: { pid: number; secret: number } | null = null;

  private state: State = 'startup';
  private readonly framer: Framer = new MessageFramer();
  private startup: Waiter<void> | null = null;
  private current: (Waiter<QueryResult> & { result: QueryResult; error: PgServerError | null }) | null = null;
  private queryChain: Promise<unknown> = Promise.resolve();
  private copyStart: Waiter<void> | null = null;
  private ending: Waiter<void> | null = null;
  private expected: Expected[] = [];
  private responses: SafeKeeperResponse[] = [];
  private responseWaiters: Waiter<SafeKeeperResponse>[] = [];
  /** Why the push channel can no longer be used (an error, or its end). */
  private copyFailure: Error | null = null;
  private socketError: Error | null = null;
  private lastVote: NodeId = zeroNodeId();
  /** When set, responses go here as they arrive instead of through nextResponse(). */
  private responseHandler: ((r: SafeKeeperResponse) => void) | null = null;
  private streamEndListeners: ((reason: Error) => void)[] = [];

  private constructor(
    private readonly socket: Socket,
    private readonly opts: ProposerConnectOptions,
  ) {
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (e) => (this.socketError = e));
    socket.on('close', () => this.onClose());
  }

  private get where(): string {
    return `${this.opts.host}:${this.opts.port}`;
  }

  /** Connect, send the StartupMessage (ztenantid/ztimelineid), authenticate, wait for ReadyForQuery. */
  static connect(opts: ProposerConnectOptions): Promise<ProposerClient> {
    for (const [name, v] of [['tenantId', opts.tenantId], ['timelineId', opts.timelineId]] as const) {
      if (!HEX32.test(v)) return Promise.reject(new Error(`${name} must be 32 hex digits, got "${v}"`));
    }
    const socket = netConnect({ host: opts.host, port: opts.port });
    socket.setNoDelay(true);
    const client = new ProposerClient(socket, opts);
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    return new Promise<ProposerClient>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.failAll(new Error(`timed out after ${timeoutMs} ms connecting to ${client.where}`));
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
        const params: Record<string, string> = {
          user: opts.user ?? 'walproposer',
          ztenantid: opts.tenantId.toLowerCase(),
          ztimelineid: opts.timelineId.toLowerCase(),
        };
        if (opts.applicationName !== undefined) params.application_name = opts.applicationName;
        socket.write(startupMessage(params));
      });
    });
  }

  /** A simple query (IDENTIFY_SYSTEM, ...). Queries run one at a time, in call order. */
  query(sql: string): Promise<QueryResult> {
    const run = (): Promise<QueryResult> =>
      new Promise<QueryResult>((resolve, reject) => {
        if (this.state !== 'idle') return reject(this.unusable('query'));
        this.state = 'query';
        this.current = { resolve, reject, result: { fields: [], rows: [], command: '' }, error: null };
        this.socket.write(queryMessage(sql));
      });
    const p = this.queryChain.then(run, run);
    this.queryChain = p.catch(() => {});
    return p;
  }

  /** Send START_WAL_PUSH and wait for CopyBothResponse. */
  async startWalPush(): Promise<void> {
    await this.queryChain;
    return new Promise<void>((resolve, reject) => {
      if (this.state !== 'idle') return reject(this.unusable('START_WAL_PUSH'));
      this.state = 'copy-starting';
      this.copyFailure = null;
      this.expected = [];
      this.responses = [];
      this.copyStart = { resolve, reject };
      this.socket.write(queryMessage('START_WAL_PUSH'));
    });
  }

  /** ServerInfo → the safekeeper's SafeKeeperInfo. */
  greet(info: ServerInfo): Promise<SafeKeeperInfo> {
    return new Promise<SafeKeeperInfo>((resolve, reject) => {
      const bytes = encodeServerInfo(info);
      const err = this.pushError('greet');
      if (err) return reject(err);
      this.expected.push({ kind: 'info', waiter: { resolve, reject } });
      this.socket.write(copyData(bytes));
    });
  }

  /** RequestVote → the NodeId the safekeeper answered: the candidate's when granted, the stored vote when refused. */
  vote(req: RequestVote): Promise<NodeId> {
    return new Promise<NodeId>((resolve, reject) => {
      const bytes = encodeRequestVote(req);
      const err = this.pushError('vote');
      if (err) return reject(err);
      this.lastVote = req.nodeId;
      this.expected.push({ kind: 'vote', waiter: { resolve, reject } });
      this.socket.write(copyData(bytes));
    });
  }

  /**
   * Deliver responses to `handler` as they arrive, in order, instead of
   * through nextResponse() (responses already queued go to it at once).
   */
  setResponseHandler(handler: ((r: SafeKeeperResponse) => void) | null): void {
    this.responseHandler = handler;
    if (!handler) return;
    const queued = this.responses;
    this.responses = [];
    for (const r of queued) handler(r);
  }

  /**
   * Called once when the push channel can no longer be used (the server
   * ended it, an error, the connection closed); at once if that is already so.
   */
  onStreamEnd(listener: (reason: Error) => void): void {
    if (this.copyFailure) listener(this.copyFailure);
    else this.streamEndListeners.push(listener);
  }

  /** Bytes written to the socket and not yet handed to the kernel. */
  get writableLength(): number {
    return this.socket.writableLength;
  }

  /** Send a WAL request without waiting; its response comes from nextResponse(), in order. */
  append(req: SafeKeeperRequest): void {
    const bytes = encodeSafeKeeperRequest(req);
    const err = this.pushError('append');
    if (err) throw err;
    this.expected.push({ kind: 'response' });
    this.socket.write(copyData(bytes));
  }

  /** The response to the oldest append() not yet returned. */
  nextResponse(): Promise<SafeKeeperResponse> {
    const ready = this.responses.shift();
    if (ready) return Promise.resolve(ready);
    const owed = this.expected.filter((e) => e.kind === 'response').length - this.responseWaiters.length;
    if (owed <= 0) return Promise.reject(this.copyFailure ?? new Error('nextResponse(): no append() is waiting for a response'));
    return new Promise<SafeKeeperResponse>((resolve, reject) => this.responseWaiters.push({ resolve, reject }));
  }

  /**
   * End the stream: a request with begin_lsn 0, then CopyDone. Resolves
   * when the server is back to ReadyForQuery or closes the connection.
   */
  endStream(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const err = this.pushError('endStream');
      if (err) return reject(err);
      this.ending = { resolve, reject };
      this.state = 'copy-ending';
      this.socket.write(
        copyData(
          encodeSafeKeeperRequest({ senderId: this.lastVote, beginLsn: 0n, endLsn: 0n, restartLsn: 0n, commitLsn: 0n, wal: new Uint8Array(0) }),
        ),
      );
      this.socket.write(copyDone());
    });
  }

  /** Terminate and close; everything pending is rejected. */
  close(): void {
    if (this.state === 'closed') return;
    if (!this.socket.destroyed) this.socket.end(terminate());
    this.failAll(new Error(`connection to ${this.where} closed by the client`));
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
      // Unparseable input: nothing after it can be trusted.
      this.failAll(e instanceof Error ? e : new Error(String(e)));
      this.socket.destroy();
    }
  }

  private handle(tag: number, body: Buffer): void {
    switch (tag) {
      case BackendTag.ErrorResponse:
        return this.onError(new PgServerError(decodeErrorFields(body)));
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
        return this.expectState('query', 'RowDescription');
      case BackendTag.DataRow:
        this.expectState('query', 'DataRow');
        this.current!.result.rows.push(decodeDataRow(body));
        return;
      case BackendTag.CommandComplete: {
        const command = decodeCommandComplete(body);
        if (this.state === 'query') this.current!.result.command = command;
        return;
      }
      case BackendTag.EmptyQueryResponse:
        return this.expectState('query', 'EmptyQueryResponse');
      case BackendTag.CopyBothResponse:
        decodeCopyResponse(body);
        return this.onCopyBoth();
      case BackendTag.CopyOutResponse:
      case BackendTag.CopyInResponse:
        throw new Error(`${this.where} answered with ${tag === BackendTag.CopyOutResponse ? 'CopyOutResponse' : 'CopyInResponse'}, expected CopyBothResponse`);
      case BackendTag.CopyData:
        return this.onCopyData(body);
      case BackendTag.CopyDone:
        return this.endCopy(new Error(`${this.where} ended the WAL push stream`));
      default:
        throw new Error(`unexpected message type '${String.fromCharCode(tag)}' (0x${tag.toString(16)}) from ${this.where}`);
    }
  }

  private expectState(state: State, what: string): void {
    if (this.state !== state) throw new Error(`unexpected ${what} from ${this.where} while ${this.state}`);
  }

  private onAuthentication(body: Buffer): void {
    this.expectState('startup', 'Authentication');
    const auth = decodeAuthentication(body);
    const user = this.opts.user ?? 'walproposer';
    switch (auth.kind) {
      case 'ok':
        return;
      case 'cleartext-password':
        this.socket.write(passwordMessage(this.needPassword()));
        return;
      case 'md5-password': {
        const inner = createHash('md5').update(this.needPassword()).update(user).digest('hex');
        const outer = createHash('md5').update(inner).update(auth.salt).digest('hex');
        this.socket.write(passwordMessage('md5' + outer));
        return;
      }
      default:
        throw new Error(`${this.where} asks for an unsupported authentication method (${auth.kind === 'other' ? `code ${auth.code}` : auth.kind})`);
    }
  }

  private needPassword(): string {
    if (this.opts.password === undefined) throw new Error(`${this.where} asks for a password and none was given`);
    return this.opts.password;
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
    } else if (state === 'copy-ending') {
      this.endCopy(new Error(`the WAL push stream to ${this.where} has ended`));
      const w = this.ending;
      this.ending = null;
      w?.resolve();
    } else if (state === 'copy' || state === 'copy-starting') {
      this.endCopy(new Error(`${this.where} left the WAL push stream`));
    }
  }

  private onCopyBoth(): void {
    this.expectState('copy-starting', 'CopyBothResponse');
    this.state = 'copy';
    const w = this.copyStart;
    this.copyStart = null;
    w?.resolve();
  }

  private onCopyData(body: Buffer): void {
    if (this.state !== 'copy' && this.state !== 'copy-ending') throw new Error(`unexpected CopyData from ${this.where} while ${this.state}`);
    const next = this.expected.shift();
    if (!next) throw new Error(`unexpected CopyData (${body.length} bytes) from ${this.where}: no request is waiting for a reply`);
    try {
      switch (next.kind) {
        case 'info':
          return next.waiter.resolve(decodeSafeKeeperInfo(body));
        case 'vote':
          return next.waiter.resolve(decodeNodeId(body));
        case 'response': {
          const resp = decodeSafeKeeperResponse(body);
          if (this.responseHandler) return this.responseHandler(resp);
          const w = this.responseWaiters.shift();
          if (w) w.resolve(resp);
          else this.responses.push(resp);
        }
      }
    } catch (e) {
      // A reply that does not decode fails its own request, then the connection.
      if (next.kind !== 'response') next.waiter.reject(e as Error);
      throw e;
    }
  }

  /** An ErrorResponse rejects everything pending; a connection in a query or stream returns to idle with ReadyForQuery. */
  private onError(err: PgServerError): void {
    if (this.state === 'startup') {
      const w = this.startup;
      this.startup = null;
      w?.reject(err);
      return;
    }
    if (this.current) this.current.error = err;
    const w = this.copyStart ?? this.ending;
    this.copyStart = this.ending = null;
    w?.reject(err);
    this.endCopy(err);
    if (this.state === 'copy-starting' || this.state === 'copy' || this.state === 'copy-ending') this.state = 'copy-ending';
  }

  /** The push channel is over: reject what still waits on it. */
  private endCopy(reason: Error): void {
    this.copyFailure ??= reason;
    const listeners = this.streamEndListeners;
    this.streamEndListeners = [];
    for (const l of listeners) l(this.copyFailure);
    const expected = this.expected;
    const waiters = this.responseWaiters;
    this.expected = [];
    this.responseWaiters = [];
    for (const e of expected) if (e.kind !== 'response') e.waiter.reject(reason);
    for (const w of waiters) w.reject(reason);
  }

  private onClose(): void {
    if (this.state === 'closed') return;
    if (this.state === 'copy-ending' && this.ending) {
      // The server may end the stream by closing the connection.
      const w = this.ending;
      this.ending = null;
      this.failAll(new Error(`connection to ${this.where} closed after the end of the stream`));
      w.resolve();
      return;
    }
    const cause = this.socketError ? `: ${this.socketError.message}` : '';
    this.failAll(new Error(`connection to ${this.where} closed${this.state === 'startup' ? ' during startup' : ''}${cause}`));
  }

  private failAll(err: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const startup = this.startup;
    const current = this.current;
    const copyStart = this.copyStart;
    const ending = this.ending;
    this.startup = this.current = this.copyStart = this.ending = null;
    startup?.reject(err);
    current?.reject(err);
    copyStart?.reject(err);
    ending?.reject(err);
    this.endCopy(err);
    this.copyFailure = err;
    this.framer.dispose();
  }

  // ---- guards ----

  private unusable(what: string): Error {
    if (this.state === 'closed') return new Error(`${what}: the connection to ${this.where} is closed`);
    return new Error(`${what}: the connection to ${this.where} is busy (${this.state})`);
  }

  private pushError(what: string): Error | null {
    if (this.state === 'copy') return null;
    if (this.copyFailure) return new Error(`${what}: the WAL push stream is over: ${this.copyFailure.message}`);
    return new Error(`${what}: no WAL push stream is open (call startWalPush() first; connection is ${this.state})`);
  }
}
