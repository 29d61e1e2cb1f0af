// The archive as a local directory (`file:///DIR`): the embedded choice for
// one machine and for tests. An object is two files, `<key>` (the body) and
// `<key>.meta.json` (its metadata); both are written to temporary names,
// fsynced and renamed, metadata last, so a reader never sees an object
// whose metadata is missing or belongs to other bytes.
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { writeFileDurably } from '../storage/fsutil.js';
import { RemoteStorageError, type ObjectInfo, type ObjectMetadata, type RemoteStorage } from './remote-storage.js';

const META_SUFFIX = '.meta.json';
const TEMP_MARK = '.tmp-';

export class FsRemoteStorage implements RemoteStorage {
  readonly description: string;

  constructor(private readonly root: string) {
    this.description = `file://${root}`;
  }

  private path(key: string): string {
    if (key === '' || key.split('/').some((part) => part === '' || part === '.' || part === '..') || key.includes(TEMP_MARK) || key.endsWith(META_SUFFIX)) {
      throw new RemoteStorageError(`invalid archive key "${key}"`, false);
    }
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Buffer, metadata: ObjectMetadata): Promise<void> {
    const file = this.path(key);
    await wrap(`storing ${key}`, async () => {
      await mkdir(dirname(file), { recursive: true });
      // Body first, then metadata: an object "exists" once its metadata does.
      await rm(file + META_SUFFIX, { force: true });
      await writeFileDurably(file, body, { tempPath: `${file}${TEMP_MARK}${process.pid}` });
      await writeFileDurably(file + META_SUFFIX, Buffer.from(JSON.stringify(metadata)), { tempPath: `${file}${META_SUFFIX}${TEMP_MARK}${process.pid}` });
    });
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const file = this.path(key);
    return wrap(`looking up ${key}`, async () => {
      const metadata = await readMetadata(file);
      if (metadata === null) return null;
      const st = await statOrNull(file);
      return st === null ? null : { key, size: st.size, metadata };
    });
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Buffer | null> {
    const file = this.path(key);
    return wrap(`reading ${key}`, async () => {
      if ((await readMetadata(file)) === null) return null;
      if (!range) return readFile(file).catch(nullIfMissing);
      const fh = await open(file, 'r').catch(nullIfMissing);
      if (fh === null) return null;
      try {
        const out = Buffer.alloc(Math.max(0, range.end - range.start));
        const { bytesRead } = await fh.read(out, 0, out.length, range.start);
        return out.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    });
  }

  async list(prefix: string): Promise<string[]> {
    return wrap(`listing ${prefix}`, async () => {
      const entries = await readdir(this.root, { recursive: true, withFileTypes: true }).catch(nullIfMissing);
      if (entries === null) return [];
      const keys: string[] = [];
      for (const e of entries) {
        if (!e.isFile() || !e.name.endsWith(META_SUFFIX) || e.name.includes(TEMP_MARK)) continue;
        const key = relative(this.root, join(e.parentPath, e.name.slice(0, -META_SUFFIX.length))).split(sep).join('/');
        if (key.startsWith(prefix)) keys.push(key);
      }
      return keys.sort();
    });
  }

  async delete(key: string): Promise<void> {
    const file = this.path(key);
    await wrap(`deleting ${key}`, async () => {
      await rm(file + META_SUFFIX, { force: true });
      await rm(file, { force: true });
    });
  }

  async close(): Promise<void> {}
}

async function readMetadata(file: string): Promise<ObjectMetadata | null> {
  const text = await readFile(file + META_SUFFIX, 'utf8').catch(nullIfMissing);
  if (text === null) return null;
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file}${META_SUFFIX} is not a JSON object`);
  return parsed as ObjectMetadata;
}

async function statOrNull(file: string) {
  return stat(file).catch(nullIfMissing);
}

function nullIfMissing(err: NodeJS.ErrnoException): null {
  if (err.code === 'ENOENT') return null;
  throw err;
}

/** Local I/O errors other than "missing" are worth retrying (a full disk may be freed). */
async function wrap<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RemoteStorageError) throw err;
    throw new RemoteStorageError(`archive ${what}: ${(err as Error).message}`, true, { cause: err });
  }
}

