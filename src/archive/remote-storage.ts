// The object store WAL is archived to: S3 (or an S3-compatible server) or a
// local directory. Everything above this interface (the offloader, readers
// served from the archive, `walkeeper restore-wal`) is written against it,
// so the directory backend is a full stand-in for S3 in one-machine setups.
//
// Errors: a missing object is not an error (null / false); anything else
// (network, 5xx, timeouts, permissions) throws RemoteStorageError, whose
// `transient` says whether trying again may help.

/** User metadata stored with an object (S3 `x-amz-meta-*`; lower-case keys). */
export type ObjectMetadata = Record<string, string>;

export interface ObjectInfo {
  key: string;
  /** Stored size in bytes (compressed size for a compressed object). */
  size: number;
  metadata: ObjectMetadata;
}

export interface RemoteStorage {
  /** Human-readable location for logs and status (`s3://bucket/prefix`, `file:///dir`). */
  readonly description: string;
  /** Store `body` under `key`, replacing any object there (callers check first: never rely on conditional writes). */
  put(key: string, body: Buffer, metadata: ObjectMetadata, signal?: AbortSignal): Promise<void>;
  /** Size and metadata, or null when there is no such object. */
  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null>;
  /** The object's bytes, or bytes [start, end) of it; null when there is no such object. */
  get(key: string, range?: { start: number; end: number }, signal?: AbortSignal): Promise<Buffer | null>;
  /** Keys under `prefix`, in lexical order. */
  list(prefix: string, signal?: AbortSignal): Promise<string[]>;
  /** Remove an object; removing a missing one is not an error. */
  delete(key: string, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export class RemoteStorageError extends Error {
  constructor(
    message: string,
    /** Worth retrying: a network error, a timeout, a 5xx or throttling. */
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RemoteStorageError';
  }
}
