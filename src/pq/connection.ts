// The server side of one PostgreSQL protocol 3.0 connection: the start-up
// phase (SSL/GSSENC refusal, cancel requests, StartupMessage, options,
// authentication, ParameterStatus, BackendKeyData, ReadyForQuery), then a
// pull-style stream of framed messages for the command layer, plus helpers
// to answer (errors, ReadyForQuery) and to close.
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import { FrameError, MessageFramer, type Framer, type Message } from '../hot/frames.js';
import type { Logger } from '../log.js';
import { trustAuth, type Authenticator } from './auth.js';
import {
  authenticationOk,
  backendKeyData,
  errorResponse,
  negotiateProtocolVersion,
  NO_ENCRYPTION,
  parameterStatus,
  readyForQuery,
  type TransactionStatus,
} from './backend.js';
import { PgError, SqlState } from './errors.js';
import { decodeStartupPacket, parseStartupOptions, StartupReader } from './startup.js';
import { FrontendTag } from './tags.js';
import { acceptTls, tlsInfo, type TlsInfo } from './tls.js';

export type { Message } from '../hot/frames.js';

/**
 * Largest length field accepted from a client after start-up, unless the
 * listener sets its own: a WAL push CopyData carries at most 128 KiB of WAL.
 * Tighter than the framer's own default (DEFAULT_MAX_FRAME_LENGTH), which
 * also serves the client side.
 */
export const MAX_CLIENT_MESSAGE = 1 << 20;

/** The start-up parameters of a connection, with the settings inside `options` (see parseStartupOptions). */
export class StartupInfo {
  constructor(
    /** Parameters exactly as sent. */
    readonly params: ReadonlyMap<string, string>,
    /** Settings parsed out of the `options` parameter. */
    readonly settings: ReadonlyMap<string, string>,
    /** Protocol version the client asked for (major << 16 | minor). */
    readonly protocol: number,
  ) {}

  /** A parameter sent directly, else the same name set inside `options`. */
  get(name: string): string | undefined {
    return this.params.get(name) ?? this.settings.get(name);
  }

  get user(): string {
    return this.params.get('user') ?? '';
  }

  get database(): string {
    return this.params.get('database') ?? this.user;
  }

  get applicationName(): string {
    return this.get('application_name') ?? '';
  }

  /** The `replication` parameter: undefined, or normalised to 'physical', 'database' or 'off'. */
  get replication(): 'physical' | 'database' | 'off' | undefined {
    const v = this.params.get('replication');
    if (v === undefined) return undefined;
    const s = v.toLowerCase();
    if (s === 'database') return 'database';
    if (['true', 'on', 'yes', '1'].includes(s)) return 'physical';
    return 'off';
  }
}

export interface ConnectionOptions {
  log: Logger;
  auth?: Authenticator;
  /**
   * Checks on the start-up parameters before authentication; throw a PgError
   * to refuse the connection (it is sent as FATAL).
   */
  validateStartup?: (info: StartupInfo) => void;
  /** ParameterStatus values to announce after authentication. */
  serverParams: (info: StartupInfo) => Array<[string, string]>;
  /** BackendKeyData to announce; omitted when undefined. */
  backendKey?: { pid: number; secret: number };
  /** Largest message length accepted after start-up (default MAX_CLIENT_MESSAGE, 1 MiB). */
  maxMessage?: number;
  /** Time allowed for the whole start-up phase (default 60 s, as authentication_timeout). */
  startupTimeoutMs?: number;
  /** Framer factory (tests use the TS twin); default the wasm MessageFramer. */
  framer?: (maxMessage: number) => Framer;
  /** Called for every ErrorResponse sent (metrics). */
  onError?: (err: PgError) => void;
  /** The TLS context an SSLRequest is accepted with (asked per request), or null: answered `N`. */
  tlsContext?: () => SecureContext | null;
  /** Called after each TLS handshake: its session, or null when it failed (metrics). */
  onTlsHandshake?: (tls: TlsInfo | null) => void;
}

/** Thrown by receive() once the client has gone (or the connection was closed here). */
export class ConnectionClosed extends Error {
  constructor(message = 'connection closed') {
    super(message);
    this.name = 'ConnectionClosed';
  }
}

const PAUSE_ABOVE = 8 << 20;
const RESUME_BELOW = 1 << 20;

export class ServerConnection {
  /** The client's socket: the TLS one once an SSLRequest was accepted. */
  socket: Socket;
  /** The TLS session, when the connection is encrypted. */
  tls: TlsInfo | null = null;
  readonly remote: string;
  readonly log: Logger;
  info: StartupInfo | undefined;
  private readonly opts: ConnectionOptions;
  private readonly startupReader = new StartupReader();
  private framer: Framer | undefined;
  private phase: 'startup' | 'messages' = 'startup';
  private wake: (() => void) | undefined;
  private closedErr: Error | undefined;
  private paused = false;
  private ending = false;
  /** Between `S` and the end of the TLS handshake: nothing can be sent, only dropped. */
  private handshaking = false;
  /** Resolves once the socket is fully closed. */
  readonly closed: Promise<void>;
  private onClosed!: () => void;
  private readonly listeners = {
    data: (chunk: Buffer) => this.onData(chunk),
    error: (err: Error) => {
      this.log.debug({ err: err.message }, 'socket error');
      this.markClosed(new ConnectionClosed(`connection lost: ${err.message}`));
    },
    close: () => {
      this.markClosed(new ConnectionClosed());
      this.onClosed();
    },
    end: () => this.markClosed(new ConnectionClosed('client closed the connection')),
  };

  constructor(socket: Socket, opts: ConnectionOptions) {
    this.socket = socket;
    this.opts = opts;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.log = opts.log;
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => (this.onClosed = resolve));
    this.listen(socket);
  }

  private listen(socket: Socket, except?: string): void {
    for (const [event, fn] of Object.entries(this.listeners)) if (event !== except) socket.on(event, fn);
  }

  private unlisten(socket: Socket): void {
    for (const [event, fn] of Object.entries(this.listeners)) socket.off(event, fn);
  }

  /** Answer an SSLRequest with `S` and go on over TLS (the start-up timeout covers the handshake). */
  private async startTls(context: SecureContext): Promise<void> {
    const raw = this.socket;
    this.unlisten(raw);
    raw.pause();
    this.handshaking = true;
    let secure;
    try {
      secure = await acceptTls(raw, context, this.listeners.data);
    } catch (err) {
      this.log.info({ err: (err as Error).message.trim() }, 'TLS handshake failed');
      this.opts.onTlsHandshake?.(null);
      raw.destroy();
      this.markClosed(new ConnectionClosed('TLS handshake failed'));
      this.onClosed();
      throw this.closedErr;
    }
    this.handshaking = false;
    this.socket = secure;
    this.tls = tlsInfo(secure);
    this.opts.onTlsHandshake?.(this.tls);
    this.listen(secure, 'data');
    if (secure.destroyed) this.listeners.close();
  }

  get isClosed(): boolean {
    return this.closedErr !== undefined;
  }

  private markClosed(err: Error): void {
    if (!this.closedErr) this.closedErr = err;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private onData(chunk: Buffer): void {
    if (this.closedErr) return;
    if (this.phase === 'startup') {
      this.startupReader.push(chunk);
    } else {
      this.framer!.push(chunk);
      if (!this.paused && this.framer!.buffered > PAUSE_ABOVE) {
        this.paused = true;
        this.socket.pause();
      }
    }
    this.notify();
  }

  /** Resolves on the next bytes or close; rejects with the reason if `signal` aborts first. */
  private waitForData(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!signal) {
        this.wake = resolve;
        return;
      }
      const onAbort = (): void => {
        if (this.wake === wake) this.wake = undefined;
        reject(signal.reason);
      };
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      this.wake = wake;
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async nextStartupPacket(): Promise<Buffer> {
    for (;;) {
      const p = this.startupReader.next();
      if (p) return p;
      if (this.closedErr) throw this.closedErr;
      await this.waitForData();
    }
  }

  /**
   * Run the start-up phase. Resolves with the parameters once the client is
   * authenticated and has been sent ReadyForQuery; null when the connection
   * ended during start-up (a cancel request, a refusal, the client left).
   */
  async handshake(): Promise<StartupInfo | null> {
    const timeout = setTimeout(() => {
      this.fatal(new PgError({ severity: 'FATAL', code: SqlState.PROTOCOL_VIOLATION, message: 'canceling authentication due to timeout' }));
    }, this.opts.startupTimeoutMs ?? 60_000);
    try {
      return await this.runStartup();
    } catch (err) {
      if (err instanceof PgError) {
        this.fatal(err);
      } else if (err instanceof ConnectionClosed) {
        this.close();
      } else {
        this.log.error({ err }, 'start-up failed');
        this.fatal(new PgError({ severity: 'FATAL', code: SqlState.INTERNAL_ERROR, message: `start-up failed: ${(err as Error).message}` }));
      }
      return null;
    } finally {
      clearTimeout(timeout);
    }
  }

  private async runStartup(): Promise<StartupInfo | null> {
    for (;;) {
      const packet = decodeStartupPacket(await this.nextStartupPacket());
      if (packet.kind === 'ssl' || packet.kind === 'gssenc') {
        // The client must not have sent anything after the request before our answer.
        if (this.startupReader.takeRest().length > 0) throw PgError.protocol('received unencrypted data after SSL request');
        const context = packet.kind === 'ssl' && !this.tls ? (this.opts.tlsContext?.() ?? null) : null;
        if (context) await this.startTls(context);
        else this.send(NO_ENCRYPTION);
        continue;
      }
      if (packet.kind === 'cancel') {
        this.log.debug({ pid: packet.pid }, 'cancel request (ignored)');
        this.close();
        return null;
      }
      const params = new Map<string, string>();
      const protocolOptions: string[] = [];
      for (const [k, v] of packet.params) {
        if (k.startsWith('_pq_.')) protocolOptions.push(k);
        else params.set(k, v);
      }
      const options = params.get('options');
      const info = new StartupInfo(params, options ? parseStartupOptions(options) : new Map(), packet.protocol);
      this.info = info;
      if ((packet.protocol & 0xffff) !== 0 || protocolOptions.length > 0) {
        this.send(negotiateProtocolVersion(0, protocolOptions));
      }
      this.opts.validateStartup?.(info);
      // Bytes after the StartupMessage belong to the tagged stream.
      const maxMessage = this.opts.maxMessage ?? MAX_CLIENT_MESSAGE;
      this.framer = this.opts.framer ? this.opts.framer(maxMessage) : new MessageFramer({ maxMessage });
      this.phase = 'messages';
      const rest = this.startupReader.takeRest();
      if (rest.length > 0) this.framer.push(rest);
      const auth = this.opts.auth ?? trustAuth;
      await auth.authenticate({ send: (b) => this.send(b), receive: () => this.receive(), params });
      const out: Buffer[] = [authenticationOk()];
      for (const [name, value] of this.opts.serverParams(info)) out.push(parameterStatus(name, value));
      if (this.opts.backendKey) out.push(backendKeyData(this.opts.backendKey.pid, this.opts.backendKey.secret));
      out.push(readyForQuery('I'));
      this.sendAll(out);
      return info;
    }
  }

  /**
   * The next message from the client. Throws ConnectionClosed when the
   * client has gone, and a FATAL PgError (08P01) for a malformed length or
   * a message over the size limit (the stream cannot be resynchronised).
   * If `signal` aborts first, rejects with its reason and consumes nothing:
   * a message that arrives later is kept for the next call.
   */
  async receive(signal?: AbortSignal): Promise<Message> {
    for (;;) {
      signal?.throwIfAborted();
      const m = this.tryReceive();
      if (m) return m;
      if (this.closedErr) throw this.closedErr;
      await this.waitForData(signal);
    }
  }

  /** A message if one is already complete, else null (never waits). Throws like receive(). */
  tryReceive(): Message | null {
    if (this.phase !== 'messages') throw new Error('tryReceive() before start-up finished');
    let m: Message | null;
    try {
      m = this.framer!.next();
    } catch (err) {
      if (err instanceof FrameError) {
        throw PgError.protocol(
          err.code === 'length-too-large' ? `message too large: ${err.message}` : `invalid message length: ${err.message}`,
        );
      }
      throw err;
    }
    if (this.paused && this.framer!.buffered < RESUME_BELOW) {
      this.paused = false;
      this.socket.resume();
    }
    return m;
  }

  /** Write bytes to the client (dropped once the connection is closing). */
  send(bytes: Uint8Array): void {
    if (this.ending || this.socket.destroyed) return;
    this.socket.write(bytes);
  }

  /** Write several messages as one batch. */
  sendAll(list: Uint8Array[]): void {
    if (this.ending || this.socket.destroyed || list.length === 0) return;
    if (list.length === 1) {
      this.socket.write(list[0]);
      return;
    }
    this.socket.cork();
    for (const b of list) this.socket.write(b);
    this.socket.uncork();
  }

  readyForQuery(status: TransactionStatus = 'I'): void {
    this.send(readyForQuery(status));
  }

  /** Report an error; the connection goes on (the caller sends ReadyForQuery when due). */
  sendError(err: PgError): void {
    this.opts.onError?.(err);
    this.send(errorResponse({ severity: err.severity, code: err.code, message: err.message, detail: err.detail, hint: err.hint }));
  }

  /** Send the error as FATAL and close the connection. */
  fatal(err: PgError): void {
    if (this.handshaking) return this.destroy();
    if (this.ending || this.socket.destroyed) return;
    this.sendError(err.fatal ? err : err.withSeverity('FATAL'));
    this.close();
  }

  /** Close after flushing what was written; force it if the client does not close its side. */
  close(): void {
    if (this.ending) return;
    this.ending = true;
    this.markClosed(new ConnectionClosed('connection closed by the server'));
    if (this.socket.destroyed) return;
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), 5000);
    t.unref();
    this.socket.once('close', () => clearTimeout(t));
  }

  /** Close at once, dropping unsent data. */
  destroy(): void {
    this.ending = true;
    this.markClosed(new ConnectionClosed('connection closed by the server'));
    this.socket.destroy();
  }

  /** Release the framer's buffers (call once the connection is over). */
  dispose(): void {
    this.framer?.dispose();
    this.framer = undefined;
    this.phase = 'startup';
  }

  static isTerminate(m: Message): boolean {
    return m.tag === FrontendTag.Terminate;
  }
}
