// A WAL push client: connects to a safekeeper as a PostgreSQL frontend,
// runs simple queries, and speaks the WAL push protocol v1 inside COPY BOTH
// (one protocol message per CopyData). Used by tests now and by a quorum
// proposer later. Replies on the push channel are untagged, so the client
// remembers what each message it sent expects back, in order.
import type { Socket } from 'node:net';
import { BackendTag, copyData, copyDataHeader, copyDone } from '../pq/frontend.js';
import {
  decodeNodeId,
  decodeSafeKeeperInfo,
  decodeSafeKeeperResponse,
  encodeRequestVote,
  encodeSafeKeeperRequest,
  encodeSafeKeeperRequestHeader,
  encodeServerInfo,
} from '../protocol/messages.js';
import { zeroNodeId } from '../protocol/node-id.js';
import type { NodeId, RequestVote, SafeKeeperInfo, SafeKeeperRequest, SafeKeeperResponse, ServerInfo } from '../protocol/types.js';
import { FrontendConnection, type CopyState, type PgServerError, type Waiter } from './frontend-connection.js';
import type { TlsClientSettings } from './tls-client.js';

export { PgServerError, type QueryResult } from './frontend-connection.js';

export interface ProposerConnectOptions {
  host: string;
  port: number;
  /** 32 hex digits. */
  tenantId: string;
  /** 32 hex digits. */
  timelineId: string;
  applicationName?: string;
  /** For cleartext, MD5 or SCRAM-SHA-256 password authentication. */
  password?: string;
  /** Startup `user` (default "walproposer"). */
  user?: string;
  /** Limit on TCP connect + startup until ReadyForQuery (default 10 s). */
  connectTimeoutMs?: number;
  /** TLS towards the safekeeper (libpq's sslmode etc.); none when absent. */
  tls?: TlsClientSettings;
}

/** What the next CopyData from the server answers. */
type Expected =
  | { kind: 'info'; waiter: Waiter<SafeKeeperInfo> }
  | { kind: 'vote'; waiter: Waiter<NodeId> }
  | { kind: 'response' };

const HEX32 = /^[0-9a-fA-F]{32}$/;
const EMPTY = new Uint8Array(0);

/**
 * Below this much WAL a request is copied into one buffer with its headers
 * and written once; from it on, the headers are corked with the WAL itself
 * (one writev, no copy). bench/append.ts measures both: a corked write of
 * three parts costs more than copying a few hundred bytes, and copying
 * 8 KiB or more costs more than the writev.
 */
export const COPY_WAL_BELOW = 1024;

/** One SafeKeeperRequest (its encoded header and its WAL) as a CopyData message on `socket`. */
export function writeRequest(socket: Pick<Socket, 'write' | 'cork' | 'uncork'>, head: Uint8Array, wal: Uint8Array): boolean {
  const frame = copyDataHeader(head.length + wal.length);
  if (wal.length < COPY_WAL_BELOW) {
    const out = Buffer.allocUnsafe(frame.length + head.length + wal.length);
    out.set(frame, 0);
    out.set(head, frame.length);
    out.set(wal, frame.length + head.length);
    return socket.write(out);
  }
  socket.cork();
  socket.write(frame);
  socket.write(head);
  const ok = socket.write(wal);
  socket.uncork();
  return ok;
}

export class ProposerClient extends FrontendConnection {
  private ending: Waiter<void> | null = null;
  private expected: Expected[] = [];
  private responses: SafeKeeperResponse[] = [];
  private responseWaiters: Waiter<SafeKeeperResponse>[] = [];
  /** Why the push channel can no longer be used (an error, or its end). */
  private copyFailure: Error | null = null;
  private lastVote: NodeId = zeroNodeId();
  /** When set, responses go here as they arrive instead of through nextResponse(). */
  private responseHandler: ((r: SafeKeeperResponse) => void) | null = null;
  private streamEndListeners: ((reason: Error) => void)[] = [];

  private constructor(opts: ProposerConnectOptions) {
    super({ host: opts.host, port: opts.port, user: opts.user ?? 'walproposer', password: opts.password, connectTimeoutMs: opts.connectTimeoutMs, tls: opts.tls });
  }

  /** Connect, send the StartupMessage (ztenantid/ztimelineid), authenticate, wait for ReadyForQuery. */
  static connect(opts: ProposerConnectOptions): Promise<ProposerClient> {
    for (const [name, v] of [['tenantId', opts.tenantId], ['timelineId', opts.timelineId]] as const) {
      if (!HEX32.test(v)) return Promise.reject(new Error(`${name} must be 32 hex digits, got "${v}"`));
    }
    const params: Record<string, string> = { ztenantid: opts.tenantId.toLowerCase(), ztimelineid: opts.timelineId.toLowerCase() };
    if (opts.applicationName !== undefined) params.application_name = opts.applicationName;
    return FrontendConnection.establish(opts, () => new ProposerClient(opts), params);
  }

  /** Send START_WAL_PUSH and wait for CopyBothResponse. */
  startWalPush(): Promise<void> {
    return this.openCopy('START_WAL_PUSH', () => {
      this.copyFailure = null;
      this.expected = [];
      this.responses = [];
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

  /**
   * Send a WAL request without waiting; its response comes from
   * nextResponse(), in order. WAL from COPY_WAL_BELOW bytes on is written
   * as it is, not copied (a proposer sends the same WAL to every
   * safekeeper): its bytes must not change afterwards.
   */
  append(req: SafeKeeperRequest): void {
    const head = encodeSafeKeeperRequestHeader(req);
    const err = this.pushError('append');
    if (err) throw err;
    this.expected.push({ kind: 'response' });
    writeRequest(this.socket, head, req.beginLsn === 0n ? EMPTY : req.wal);
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

  // ---- incoming ----

  protected handle(tag: number, body: Buffer): void {
    switch (tag) {
      case BackendTag.CopyData:
        return this.onCopyData(body);
      case BackendTag.CopyDone:
        return this.endCopy(new Error(`${this.where} ended the WAL push stream`));
      default:
        return this.handleOther(tag, body);
    }
  }

  protected copyReady(was: CopyState): void {
    if (was === 'copy-ending') {
      this.endCopy(new Error(`the WAL push stream to ${this.where} has ended`));
      const w = this.ending;
      this.ending = null;
      w?.resolve();
    } else {
      this.endCopy(new Error(`${this.where} left the WAL push stream`));
    }
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
  protected copyError(err: PgServerError): void {
    this.abandonStream(err);
    if (this.state === 'copy-starting' || this.state === 'copy' || this.state === 'copy-ending') this.state = 'copy-ending';
  }

  /** The stream failed: its start or end (at most one waits) and every reply still owed. */
  private abandonStream(err: Error): void {
    const w = this.copyStart ?? this.ending;
    this.copyStart = this.ending = null;
    w?.reject(err);
    this.endCopy(err);
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

  protected override onSocketClose(): void {
    const w = this.state === 'copy-ending' ? this.ending : null;
    if (!w) return super.onSocketClose();
    // The server may end the stream by closing the connection.
    this.ending = null;
    this.fail(new Error(`connection to ${this.where} closed after the end of the stream`));
    w.resolve();
  }

  protected failPending(err: Error): void {
    this.abandonStream(err);
    this.copyFailure = err;
  }

  // ---- guards ----

  private pushError(what: string): Error | null {
    if (this.state === 'copy') return null;
    if (this.copyFailure) return new Error(`${what}: the WAL push stream is over: ${this.copyFailure.message}`);
    return new Error(`${what}: no WAL push stream is open (call startWalPush() first; connection is ${this.state})`);
  }
}
