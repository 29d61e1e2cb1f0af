// A small PostgreSQL frontend for the quorum proposer's other connections:
// the physical replication connection to the primary, the recovery streams
// from peer safekeepers (application_name wal_proposer_recovery), and an
// ordinary SQL session. Simple queries, and COPY BOTH streaming whose
// CopyData payloads go to a handler as they arrive; the socket can be paused
// so that a fast sender cannot fill memory.
import { BackendTag, copyData, copyDone, decodeDataRow, decodeRowDescription } from '../pq/frontend.js';
import type { ConnTarget } from './connstr.js';
import { FrontendConnection, type CopyState, type PgServerError } from './frontend-connection.js';
import type { TlsClientSettings } from './tls-client.js';

export interface PgClientOptions extends Omit<ConnTarget, 'tls'> {
  /** TLS as libpq's sslmode etc. say; none when absent. */
  tls?: TlsClientSettings;
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

export class PgClient extends FrontendConnection {
  private copy: { handlers: CopyHandlers; rows: (string | null)[][]; error: PgServerError | null; clientDone: boolean; serverDone: boolean } | null = null;
  private closeListeners: ((err: Error) => void)[] = [];

  private constructor(readonly opts: PgClientOptions) {
    super(opts, 'password=... in the connection string, or PGPASSWORD');
  }

  static connect(opts: PgClientOptions): Promise<PgClient> {
    const params: Record<string, string> = { database: opts.database };
    if (opts.replication) params.replication = 'true';
    if (opts.applicationName !== undefined) params.application_name = opts.applicationName;
    if (opts.options !== undefined) params.options = opts.options;
    Object.assign(params, opts.params ?? {});
    return FrontendConnection.establish(opts, () => new PgClient(opts), params);
  }

  /** Called once when the connection is gone (after close() too). */
  onClose(listener: (err: Error) => void): void {
    if (this.closeReason) listener(this.closeReason);
    else this.closeListeners.push(listener);
  }

  /**
   * Send a query that answers with CopyBothResponse (START_REPLICATION).
   * Resolves once the stream is open; an error before it rejects. From then
   * on the handlers get the stream.
   */
  copyBoth(sql: string, handlers: CopyHandlers): Promise<void> {
    return this.openCopy(sql, () => (this.copy = { handlers, rows: [], error: null, clientDone: false, serverDone: false }));
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
  override close(): void {
    if (this.isClosed) return;
    super.close();
    // A server that ignores Terminate must not keep the socket open.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  // ---- incoming ----

  protected handle(tag: number, body: Buffer): void {
    switch (tag) {
      case BackendTag.CopyData:
        if (this.state !== 'copy' && this.state !== 'copy-ending') throw new Error(`unexpected CopyData from ${this.where} while ${this.state}`);
        if (this.copy && !this.copy.serverDone) this.copy.handlers.data(body);
        return;
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
        return this.handleOther(tag, body);
    }
  }

  /** START_REPLICATION ends a timeline with a one-row result after the COPY: keep it for the handlers' end(). */
  protected override resultOutsideQuery(what: 'RowDescription' | 'DataRow' | 'EmptyQueryResponse', body: Buffer): void {
    if (what === 'DataRow') {
      const row = decodeDataRow(body);
      this.copy?.rows.push(row);
    } else if (what === 'RowDescription') {
      decodeRowDescription(body);
    }
  }

  /** The end of a COPY (after both CopyDones, or after an error). */
  protected copyReady(_was: CopyState): void {
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

  /** The error ends the COPY at the next ReadyForQuery (or with the connection, if it was FATAL). */
  protected copyError(err: PgServerError): void {
    if (this.copy) this.copy.error = err;
    if (this.state === 'copy' || this.state === 'copy-ending') this.state = 'copy-ending';
  }

  protected failPending(err: Error): void {
    const copyStart = this.copyStart;
    const copy = this.copy;
    this.copyStart = this.copy = null;
    if (copyStart) copyStart.reject(copy?.error ?? err);
    else if (copy) copy.handlers.end(copy.error ? { kind: 'error', error: copy.error } : { kind: 'closed', error: err });
    const listeners = this.closeListeners;
    this.closeListeners = [];
    for (const l of listeners) l(err);
  }
}
