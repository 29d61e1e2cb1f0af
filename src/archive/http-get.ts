// One GET over http: or https: with Node's own clients: global fetch takes
// no CA, and a safekeeper's admin API may serve a certificate from a CA the
// operator names on the command line instead of the system's.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpGetOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** https: trust these CA certificates (PEM) instead of the system's. */
  ca?: Buffer;
}

export interface HttpGetResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** The whole response; rejects with Node's error (its `code` says why) when there is none. */
export function httpGet(url: string, opts: HttpGetOptions = {}): Promise<HttpGetResult> {
  const target = new URL(url);
  return new Promise<HttpGetResult>((resolve, reject) => {
    const options = { headers: opts.headers, signal: opts.signal };
    const req =
      target.protocol === 'https:' ? httpsRequest(target, { ...options, ...(opts.ca ? { ca: opts.ca } : {}) }) : httpRequest(target, options);
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.end();
  });
}
