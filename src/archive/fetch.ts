// Fetch one WAL segment or timeline history file for `walkeeper restore-wal`
// from the places it may be: the archive and/or safekeepers' admin APIs.
//
// The answer has to be exact, because PostgreSQL reads "not found" as "the
// WAL ends here" and stops recovery early if that is wrong:
//   found    the file's bytes, checked against the stored checksum and
//            against its own page header (or history syntax);
//   missing  every source answered "no such file";
//   failure  anything else (a source down, a 5xx, a timeout, a refused
//            token, a corrupt copy) once retries are spent.
import { HistoryParseError, parseHistory } from '../wal/history.js';
import { HISTORY_NAME, verifySegment, walFileKind, WalFileCheckError } from '../wal/verify-segment.js';
import { decodeObject, objectKey, ObjectFormatError, sha256Hex } from './object-format.js';
import { RemoteStorageError, type RemoteStorage } from './remote-storage.js';

/** Why a source could not give an answer. */
export type ProblemKind = 'transient' | 'corrupt' | 'refused';

export class SourceProblem extends Error {
  constructor(
    readonly kind: ProblemKind,
    message: string,
  ) {
    super(message);
    this.name = 'SourceProblem';
  }
}

export interface WalFileSource {
  readonly description: string;
  /** The file's bytes (checksum verified), null when this source has no such file; SourceProblem otherwise. */
  fetch(name: string, signal?: AbortSignal): Promise<Buffer | null>;
}

/** The archive: `<tenant>/<timeline>/<name>`, decoded and checked against its metadata. */
export class ArchiveSource implements WalFileSource {
  readonly description: string;

  constructor(
    private readonly storage: RemoteStorage,
    private readonly tenantId: string,
    private readonly timelineId: string,
  ) {
    this.description = `archive ${storage.description}`;
  }

  async fetch(name: string, signal?: AbortSignal): Promise<Buffer | null> {
    const key = objectKey(this.tenantId, this.timelineId, name);
    try {
      const info = await this.storage.head(key, signal);
      if (!info) return null;
      const body = await this.storage.get(key, undefined, signal);
      // Removed between the two requests: it was there, so this is no proof of absence.
      if (!body) throw new SourceProblem('transient', `${this.description}: ${key} disappeared while being read`);
      return await decodeObject(key, body, info.metadata);
    } catch (err) {
      if (err instanceof SourceProblem) throw err;
      if (err instanceof ObjectFormatError) throw new SourceProblem('corrupt', `${this.description}: ${err.message}`);
      if (err instanceof RemoteStorageError) {
        // The backend's messages may already name the archive.
        const message = err.message.startsWith(this.description) ? err.message : `${this.description}: ${err.message}`;
        throw new SourceProblem(err.transient ? 'transient' : 'refused', message);
      }
      throw new SourceProblem('transient', `${this.description}: ${(err as Error).message}`);
    }
  }
}

/** A safekeeper's `GET /v1/tenant/:t/timeline/:tl/file/:name`. */
export class SafekeeperSource implements WalFileSource {
  readonly description: string;

  constructor(
    private readonly address: string,
    private readonly tenantId: string,
    private readonly timelineId: string,
    private readonly token: string | undefined,
    private readonly timeoutMs = 60_000,
  ) {
    this.description = `safekeeper ${address}`;
  }

  async fetch(name: string, signal?: AbortSignal): Promise<Buffer | null> {
    const url = `http://${this.address}/v1/tenant/${this.tenantId}/timeline/${this.timelineId}/file/${name}`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    let body: Buffer;
    try {
      res = await fetch(url, {
        headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      body = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = timeout.aborted ? `no answer within ${this.timeoutMs / 1000} s` : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new SourceProblem('transient', `${this.description}: ${why}`);
    }
    if (res.status === 404) return null;
    if (res.status !== 200) {
      const kind: ProblemKind = res.status >= 500 || res.status === 429 ? 'transient' : 'refused';
      throw new SourceProblem(kind, `${this.description}: HTTP ${res.status}${errorMessage(body)}`);
    }
    const want = res.headers.get('x-walkeeper-sha256');
    if (!want) throw new SourceProblem('corrupt', `${this.description}: ${name} came without an x-walkeeper-sha256 header`);
    const got = sha256Hex(body);
    if (got !== want.toLowerCase()) throw new SourceProblem('corrupt', `${this.description}: ${name} has SHA-256 ${got}, the server says ${want}`);
    return body;
  }
}

function errorMessage(body: Buffer): string {
  try {
    const j = JSON.parse(body.toString('utf8')) as { message?: unknown };
    return typeof j.message === 'string' ? ` (${j.message})` : '';
  } catch {
    return '';
  }
}

/** Throws WalFileCheckError unless `bytes` is a plausible `name` (segment header or history syntax). */
export function verifyWalFile(name: string, bytes: Uint8Array): void {
  if (walFileKind(name) === 'segment') return verifySegment(name, bytes);
  const m = HISTORY_NAME.exec(name);
  if (!m) throw new WalFileCheckError(name, 'is not a WAL segment or history file name');
  const tli = parseInt(m[1], 16);
  let entries;
  try {
    entries = parseHistory(bytes);
  } catch (err) {
    if (err instanceof HistoryParseError) throw new WalFileCheckError(name, err.message);
    throw err;
  }
  const newer = entries.find((e) => e.timeline >= tli);
  if (newer) throw new WalFileCheckError(name, `lists timeline ${newer.timeline}, not older than ${tli}`);
}

export type FetchOutcome = { kind: 'found'; bytes: Buffer; source: string } | { kind: 'missing' };

export class FetchFailure extends Error {
  constructor(
    /** 'corrupt' when some source had a damaged copy and none a good one. */
    readonly kind: 'unavailable' | 'corrupt',
    message: string,
  ) {
    super(message);
    this.name = 'FetchFailure';
  }
}

export interface FetchOptions {
  /** Rounds over all sources (default 3). */
  attempts?: number;
  /** Wait before round n+1: backoffMs * 4^(n-1) (default 250 ms: 0.25 s, 1 s, ...). */
  backoffMs?: number;
  signal?: AbortSignal;
}

/**
 * Ask the sources in order until one has a good copy. "Missing" only when
 * every source said so in the same round; otherwise retry, then FetchFailure.
 */
export async function fetchWalFile(name: string, sources: readonly WalFileSource[], opts: FetchOptions = {}): Promise<FetchOutcome> {
  const attempts = opts.attempts ?? 3;
  const backoffMs = opts.backoffMs ?? 250;
  let problems: SourceProblem[] = [];
  for (let attempt = 1; attempt <= attempts; attempt++) {
    problems = [];
    for (const source of sources) {
      try {
        const bytes = await source.fetch(name, opts.signal);
        if (bytes === null) continue;
        verifyWalFile(name, bytes);
        return { kind: 'found', bytes, source: source.description };
      } catch (err) {
        if (err instanceof SourceProblem) problems.push(err);
        else if (err instanceof WalFileCheckError) problems.push(new SourceProblem('corrupt', `${source.description}: ${err.message}`));
        else throw err;
      }
    }
    if (problems.length === 0) return { kind: 'missing' };
    if (problems.every((p) => p.kind === 'refused') || attempt === attempts) break;
    await new Promise((resolve) => setTimeout(resolve, backoffMs * 4 ** (attempt - 1)));
  }
  const corrupt = problems.some((p) => p.kind === 'corrupt');
  const tries = attempts > 1 && !problems.every((p) => p.kind === 'refused') ? ` (after ${attempts} tries)` : '';
  return Promise.reject(new FetchFailure(corrupt ? 'corrupt' : 'unavailable', `${name}${tries}: ${problems.map((p) => p.message).join('; ')}`));
}
