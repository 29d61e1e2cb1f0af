// What the replication side needs from the daemon's connection: the daemon
// owns the socket, the framing and the start-up phase, and lends them to
// handleReplicationQuery() for one query at a time.

/** A framed client message: tag byte and body (without tag and length). */
export interface ClientMessage {
  tag: number;
  body: Uint8Array;
}

export interface ReplicationConnection {
  /**
   * Queue whole messages on the socket (never blocks). Returns false when
   * the socket's buffer is over its high-water mark: the caller should wait
   * for drain() before queueing more bulk data. `written`, when given, is
   * called once the bytes were handed to the kernel and `bytes` may be
   * reused; it may never be called (the connection closed first).
   */
  send(bytes: Uint8Array, written?: () => void): boolean;
  /** Resolves when the socket's buffer has drained, or the socket is closed. */
  drain(): Promise<void>;
  /**
   * The next message from the client, in order; null once the client has
   * closed the connection. If `signal` aborts first, rejects with its
   * reason and consumes nothing: a message that arrives later is kept for
   * the next caller (the daemon's query loop).
   */
  nextMessage(signal?: AbortSignal): Promise<ClientMessage | null>;
  /** Parameters of the StartupMessage (application_name, ztimelineid, ...). */
  readonly startupParams: Readonly<Record<string, string>>;
  /** "host:port" of the client. */
  readonly remoteAddress: string;
  /** Told about every ErrorResponse sent, by SQLSTATE (metrics). */
  errorSent?(sqlstate: string): void;
}

/** What the daemon does after a query was handled. */
export type QueryOutcome =
  /** ReadyForQuery was sent: read the next query. */
  | 'ready'
  /** The session is over (client Terminate or EOF, shutdown, timeout, FATAL error): close the socket. */
  | 'close';
