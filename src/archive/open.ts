// The archive named by `--remote-storage URL [--remote-storage-endpoint URL]`.
import { FsRemoteStorage } from './fs-storage.js';
import { ArchiveLocationError, parseArchiveLocation } from './location.js';
import type { RemoteStorage } from './remote-storage.js';

export interface ArchiveSettings {
  /** `s3://BUCKET[/PREFIX]` or `file:///DIR`. */
  url: string;
  /** An S3-compatible server (path-style requests); only with s3:// URLs. */
  endpoint?: string;
}

export async function openRemoteStorage(settings: ArchiveSettings): Promise<RemoteStorage> {
  const location = parseArchiveLocation(settings.url);
  if (location.kind === 'file') {
    if (settings.endpoint !== undefined) throw new ArchiveLocationError('--remote-storage-endpoint applies to s3:// archives only');
    return new FsRemoteStorage(location.dir);
  }
  if (settings.endpoint !== undefined) {
    try {
      new URL(settings.endpoint);
    } catch {
      throw new ArchiveLocationError(`invalid remote storage endpoint "${settings.endpoint}" (expected a URL such as http://127.0.0.1:9000)`);
    }
  }
  // Loaded on demand: the SDK is large, and `walkeeper restore-wal` from a
  // directory archive should not pay for it at every start.
  const { S3RemoteStorage } = await import('./s3-storage.js');
  return new S3RemoteStorage({ bucket: location.bucket, prefix: location.prefix, endpoint: settings.endpoint });
}
