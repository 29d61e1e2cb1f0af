// The archive in S3 or an S3-compatible server, through the AWS SDK.
// Credentials and region come from the SDK's standard chain (environment,
// shared config and credentials files, instance metadata). With an explicit
// endpoint (an S3-compatible server) requests are path-style.
//
// Bodies are Buffers with a known length and checksums are computed only
// where S3 requires them: the SDK's default streaming-checksum trailers are
// refused by several S3-compatible servers, and a whole-object SHA-256 is
// stored in the metadata anyway (object-format.ts).
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { RemoteStorageError, type ObjectInfo, type ObjectMetadata, type RemoteStorage } from './remote-storage.js';

export interface S3StorageOptions {
  bucket: string;
  /** Key prefix without leading or trailing slash ('' for none). */
  prefix: string;
  /** An S3-compatible server's URL; requests then use path-style addressing. */
  endpoint?: string;
  /** Default: AWS_REGION / the shared config, else us-east-1. */
  region?: string;
  /** Attempts per request, the SDK's own retries included (default 3). */
  maxAttempts?: number;
  /** Per-request timeout (default 120 s, as Neon's remote storage). */
  requestTimeoutMs?: number;
}

export class S3RemoteStorage implements RemoteStorage {
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(opts: S3StorageOptions) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix === '' ? '' : `${opts.prefix}/`;
    this.timeoutMs = opts.requestTimeoutMs ?? 120_000;
    this.description = `s3://${opts.bucket}${opts.prefix ? `/${opts.prefix}` : ''}${opts.endpoint ? ` at ${opts.endpoint}` : ''}`;
    this.client = new S3Client({
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      endpoint: opts.endpoint,
      forcePathStyle: opts.endpoint !== undefined,
      maxAttempts: opts.maxAttempts ?? 3,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  async put(key: string, body: Buffer, metadata: ObjectMetadata, signal?: AbortSignal): Promise<void> {
    await this.call(`storing ${key}`, signal, (abortSignal) =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: body, ContentLength: body.length, Metadata: metadata }),
        { abortSignal },
      ),
    );
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    const out = await this.call(`looking up ${key}`, signal, (abortSignal) =>
      this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), { abortSignal }),
    );
    if (out === null) return null;
    return { key, size: out.ContentLength ?? 0, metadata: lowerCaseKeys(out.Metadata ?? {}) };
  }

  async get(key: string, range?: { start: number; end: number }, signal?: AbortSignal): Promise<Buffer | null> {
    if (range && range.end <= range.start) return Buffer.alloc(0);
    return this.call(`reading ${key}`, signal, async (abortSignal) => {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Range: range ? `bytes=${range.start}-${range.end - 1}` : undefined }),
        { abortSignal },
      );
      if (!out.Body) return Buffer.alloc(0);
      return Buffer.from(await out.Body.transformToByteArray());
    });
  }

  async list(prefix: string, signal?: AbortSignal): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.call(`listing ${prefix}`, signal, (abortSignal) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }), { abortSignal }),
      );
      if (out === null) break;
      for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key.slice(this.prefix.length));
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    await this.call(`deleting ${key}`, signal, (abortSignal) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), { abortSignal }),
    );
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** One request with a timeout; "no such key" is null, other failures a RemoteStorageError. */
  private async call<T>(what: string, signal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T | null> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const abortSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      return await fn(abortSignal);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw new RemoteStorageError(`archive ${this.description}: ${what}: ${describe(err, timeout.aborted)}`, isTransient(err, timeout.aborted), { cause: err });
    }
  }
}

function isNotFound(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404;
}

function isTransient(err: unknown, timedOut: boolean): boolean {
  if (timedOut) return true;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata?.httpStatusCode ?? 0;
    return status >= 500 || status === 429 || err.$fault === 'server' || err.name === 'SlowDown' || err.name === 'RequestTimeout';
  }
  // Network errors (ECONNREFUSED, ECONNRESET, DNS) and aborts.
  return true;
}

function describe(err: unknown, timedOut: boolean): string {
  if (timedOut) return 'timed out';
  if (err instanceof S3ServiceException) return `${err.name} (HTTP ${err.$metadata?.httpStatusCode ?? '?'}): ${err.message}`;
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(e.message ?? err);
}

function lowerCaseKeys(m: Record<string, string>): ObjectMetadata {
  const out: ObjectMetadata = {};
  for (const [k, v] of Object.entries(m)) out[k.toLowerCase()] = v;
  return out;
}
