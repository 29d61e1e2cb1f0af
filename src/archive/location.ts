// `--remote-storage URL`: where the archive is. `s3://BUCKET[/PREFIX]` or
// `file:///DIR` (an absolute directory).
import { fileURLToPath } from 'node:url';

export type ArchiveLocation = { kind: 'file'; dir: string } | { kind: 's3'; bucket: string; prefix: string };

export class ArchiveLocationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveLocationError';
  }
}

// S3's bucket naming rules (lower case, digits, dots, hyphens; 3-63 long).
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function parseArchiveLocation(text: string): ArchiveLocation {
  const bad = (why: string) => new ArchiveLocationError(`invalid remote storage "${text}": ${why} (expected s3://BUCKET[/PREFIX] or file:///DIR)`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol === 'file:') {
    if (url.host !== '') throw bad('a file URL names no host (file:///DIR)');
    if (url.search || url.hash) throw bad('a file URL takes no query or fragment');
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch {
      // A malformed percent escape, or an encoded "/" (%2F) in the path.
      throw bad('the path has a malformed or forbidden percent escape');
    }
    const dir = path.replace(/\/+$/, '');
    if (dir === '') throw bad('the directory cannot be /');
    return { kind: 'file', dir };
  }
  if (url.protocol === 's3:') {
    if (url.username || url.password || url.port) throw bad('credentials and ports do not belong in the URL (use the AWS environment and --remote-storage-endpoint)');
    if (url.search || url.hash) throw bad('an s3 URL takes no query or fragment');
    if (!BUCKET.test(url.hostname)) throw bad(`"${url.hostname}" is not a valid bucket name`);
    let decoded: string;
    try {
      decoded = decodeURIComponent(url.pathname);
    } catch {
      throw bad('the prefix has a malformed percent escape');
    }
    const prefix = decoded.replace(/^\/+|\/+$/g, '');
    if (prefix.split('/').some((p) => p === '.' || p === '..') || prefix.includes('//')) throw bad('the prefix has an empty, "." or ".." part');
    return { kind: 's3', bucket: url.hostname, prefix };
  }
  throw bad(`unsupported scheme "${url.protocol.slice(0, -1)}"`);
}
