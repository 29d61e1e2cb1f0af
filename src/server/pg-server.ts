// The PostgreSQL-protocol listener: accepts connections, runs start-up,
// then a simple-query loop dispatching commands. Every failure is answered
// with an ErrorResponse; nothing a client sends can stop the listener.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import { version } from '../version.js';
import { ServerConnection, type StartupInfo } from '../pq/connection.js';
import { describeTag, FrontendTag } from '../pq/tags.js';
import { PgError, SqlState } from '../pq/errors.js';
import type { TimelineKey } from '../timeline/ids.js';
import { namedTimeline, type ClientSession, type ServerContext } from './context.js';
import { runQuery } from './dispatch.js';
import { toPgError } from './errors.js';
import { checkEncryption, tlsContextFor } from './tls.js';
import { admission, DEFAULT_CONNECTION_LIMITS, queryTooLong, refuseConnection, tooManyConnections } from './limits.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** ParameterStatus values a PostgreSQL 15 walsender announces (docs/protocol.md §2.4). */
export function serverParams(ctx: ServerContext, info: StartupInfo): Array<[string, string]> {
  const requested = (info.get('client_encoding') ?? '').toUpperCase().replace(/[-_]/g, '');
  const clientEncoding = requested === 'UTF8' || requested === 'UNICODE' ? 'UTF8' : 'SQL_ASCII';
  return [
    ['application_name', info.applicationName],
    ['client_encoding', clientEncoding],
    ['DateStyle', 'ISO, MDY'],
    ['default_transaction_read_only', 'off'],
    ['in_hot_standby', 'off'],
    ['integer_datetimes', 'on'],
    ['IntervalStyle', 'postgres'],
    ['is_superuser', 'on'],
    ['server_encoding', 'SQL_ASCII'],
    ['server_version', ctx.serverVersion],
    ['session_authorization', info.user],
    ['standard_conforming_strings', 'on'],
    ['TimeZone', 'Etc/UTC'],
  ];
}

export function defaultServerVersion(): string {
  return `15.0 (walkeeper ${version})`;
}

export class PgServer {
  private readonly server: Server;
  private readonly sessions = new Set<ClientSession>();
  private readonly conns = new Set<ServerConnection>();
  private nextPid = 1;
  address: ListenAddress | undefined;

  constructor(private readonly ctx: ServerContext) {
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Connections accepted since the listener started. */
  get acceptedCount(): number {
    return this.nextPid - 1;
  }

  /** Listen; rejects with a one-line error (address in use, not available, ...). */
  listen(addr: ListenAddress): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(listenError('pg', addr, err));
      this.server.once('error', onError);
      this.server.listen({ host: addr.host, port: addr.port }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.ctx.log.error({ err }, 'pg listener error'));
        const a = this.server.address() as AddressInfo;
        this.address = { host: a.address, port: a.port };
        resolve(this.address);
      });
    });
  }

  private get limits() {
    return this.ctx.limits ?? DEFAULT_CONNECTION_LIMITS;
  }

  private accept(socket: Socket): void {
    if (this.ctx.stopping) {
      socket.destroy();
      return;
    }
    const admitted = admission(this.conns.size, this.limits);
    if (admitted === 'refuse-now') {
      this.ctx.observer?.errorSent?.(SqlState.TOO_MANY_CONNECTIONS);
      refuseConnection(socket, tooManyConnections());
      return;
    }
    const pid = this.nextPid++;
    const log = this.ctx.log.child({ conn: pid, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    const conn = new ServerConnection(socket, {
      log,
      validateStartup: (info) => {
        if (admitted === 'refuse-after-startup') throw tooManyConnections();
        checkEncryption(this.ctx.tls, conn.tls !== null, info);
        if (info.replication === 'database') {
          throw new PgError({ severity: 'FATAL', code: SqlState.FEATURE_NOT_SUPPORTED, message: 'logical replication connections are not supported by walkeeper' });
        }
        namedTimeline(info);
      },
      serverParams: (info) => serverParams(this.ctx, info),
      backendKey: { pid, secret: randomInt(0, 0x7fffffff) },
      auth: this.ctx.auth,
      onError: (err) => this.ctx.observer?.errorSent?.(err.code),
      tlsContext: () => tlsContextFor(this.ctx.tls),
      onTlsHandshake: (tls) => this.ctx.observer?.tlsHandshake?.(tls?.protocol ?? null),
      startupTimeoutMs: this.limits.startupTimeoutMs,
    });
    this.conns.add(conn);
    void this.serve(conn, log).finally(() => {
      this.conns.delete(conn);
      conn.dispose();
    });
  }

  private async serve(conn: ServerConnection, log: ServerContext['log']): Promise<void> {
    const info = await conn.handshake();
    if (!info) {
      conn.close();
      await conn.closed;
      return;
    }
    const cs: ClientSession = { ctx: this.ctx, conn, info, named: namedTimeline(info), log };
    log.debug({ user: info.user, application: info.applicationName, replication: info.replication ?? null, tls: conn.tls, ...cs.named }, 'connection ready');
    this.sessions.add(cs);
    try {
      for (;;) {
        let m;
        try {
          m = await conn.receive();
        } catch (err) {
          const e = toPgError(err);
          if (e) conn.fatal(e);
          return;
        }
        if (m.tag === FrontendTag.Terminate) {
          conn.close();
          return;
        }
        if (m.tag !== FrontendTag.Query) {
          conn.fatal(PgError.protocol(`unsupported frontend message type ${describeTag(m.tag, 'quoted')}: only simple queries are accepted`));
          return;
        }
        const nul = m.body.indexOf(0);
        const length = nul < 0 ? m.body.length : nul;
        try {
          if (length > this.limits.maxQueryLength) throw queryTooLong(length, this.limits.maxQueryLength);
          const query = m.body.subarray(0, length).toString('utf8');
          if (!(await runQuery(cs, query))) return;
        } catch (err) {
          const e = toPgError(err, 'ERROR');
          if (!e) return;
          if (e.fatal) {
            conn.fatal(e);
            return;
          }
          conn.sendError(e);
          conn.readyForQuery();
        }
      }
    } finally {
      this.sessions.delete(cs);
      conn.close();
      await conn.closed;
    }
  }

  private closedListener: Promise<void> | undefined;

  /**
   * Stop accepting connections; existing ones go on. (The returned promise
   * settles once the listener is closed, not when the connections are gone:
   * net.Server's close callback would wait for those.)
   */
  stopAccepting(): Promise<void> {
    if (!this.closedListener) {
      this.closedListener = new Promise((resolve) => {
        if (!this.server.listening) return resolve();
        this.server.close(() => resolve());
      });
    }
    return Promise.resolve();
  }

  /** Stop reading from every connection. */
  pauseAll(): void {
    for (const c of this.conns) c.socket.pause();
  }

  /**
   * Close the connections whose start-up parameters name this timeline's
   * tenant and timeline (FATAL with `err`); resolves with how many once
   * they are gone (forcing after `graceMs`).
   */
  async closeTimelineConnections(key: TimelineKey, err: PgError, graceMs = 2000): Promise<number> {
    const mine = [...this.sessions].filter((cs) => cs.named.tenantId === key.tenantId && cs.named.timelineId === key.timelineId).map((cs) => cs.conn);
    for (const c of mine) c.fatal(err);
    const timer = setTimeout(() => {
      for (const c of mine) c.destroy();
    }, graceMs);
    await Promise.all(mine.map((c) => c.closed));
    clearTimeout(timer);
    return mine.length;
  }

  /** Close every connection with 57P01, then wait for them to be gone (forcing after `graceMs`). */
  async closeAll(graceMs = 2000): Promise<void> {
    const err = new PgError({ severity: 'FATAL', code: SqlState.ADMIN_SHUTDOWN, message: 'terminating connection due to administrator command' });
    const all = [...this.conns];
    for (const c of all) c.fatal(err);
    const timer = setTimeout(() => {
      for (const c of all) c.destroy();
    }, graceMs);
    await Promise.all(all.map((c) => c.closed));
    clearTimeout(timer);
    await this.closedListener;
  }
}

/** A listen failure as one readable line. */
export function listenError(what: string, addr: ListenAddress, err: NodeJS.ErrnoException): Error {
  const where = `${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`;
  let why: string;
  switch (err.code) {
    case 'EADDRINUSE':
      why = 'address already in use (is another walkeeper or server running there?)';
      break;
    case 'EADDRNOTAVAIL':
      why = 'address not available on this machine';
      break;
    case 'EACCES':
      why = 'permission denied';
      break;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      why = 'host name not found';
      break;
    default:
      why = err.message;
  }
  const e = new Error(`cannot listen for ${what} connections on ${where}: ${why}`) as NodeJS.ErrnoException;
  e.code = err.code;
  return e;
}
