// TLS material for tests, made with openssl in a temp directory the
// PostgreSQL user can read (psql, pg_receivewal and the walreceiver read
// the CA file), and a client that starts TLS on the pq port the way libpq
// does (SSLRequest, `S`, then the handshake).
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { chownToPg } from './pg.js';

export interface CertFiles {
  cert: string;
  key: string;
  /** SHA-256 fingerprint as Node and openssl print it (AA:BB:…). */
  fingerprint256: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function files(dir: string, name: string): CertFiles {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  chmodSync(cert, 0o644);
  chmodSync(key, 0o600);
  chownToPg(cert);
  return { cert, key, fingerprint256: new X509Certificate(readFileSync(cert)).fingerprint256 };
}

/** A self-signed CA (P-256) named `name`: DIR/name.pem and DIR/name.key. */
export function makeCa(dir: string, name = 'ca'): CertFiles {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=walkeeper test ${name}`, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`)]);
  return files(dir, name);
}

/** A server certificate signed by `ca`, for localhost and 127.0.0.1 (what verify-full checks). */
export function makeServerCert(dir: string, ca: CertFiles, name = 'server'): CertFiles {
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', join(dir, `${name}.key`), '-out', csr]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', join(dir, `${name}.pem`)]);
  return files(dir, name);
}

/** Connect to `port` and send an SSLRequest (or another 8-byte request `code`); the socket and the server's first bytes. */
export async function sslRequested(port: number, code = 80877103): Promise<{ raw: Socket; answer: string }> {
  const raw = netConnect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(code, 4);
  raw.write(b);
  const answer = await new Promise<Buffer>((resolve, reject) => raw.once('data', resolve).once('error', reject).once('close', () => reject(new Error('closed before the answer'))));
  return { raw, answer: answer.toString('latin1') };
}

/** The one-byte answer to an SSLRequest (or GSSENCRequest) on a fresh connection (closed afterwards). */
export async function sslAnswer(port: number, code = 80877103): Promise<string> {
  const { raw, answer } = await sslRequested(port, code);
  raw.destroy();
  return answer.slice(0, 1);
}

/** Connect to the pq port and start TLS as libpq does, verifying the server against `ca` for `servername`. */
export async function pqTlsConnect(port: number, ca: string, servername = 'localhost'): Promise<TLSSocket> {
  const { raw, answer } = await sslRequested(port);
  if (answer !== 'S') {
    raw.destroy();
    throw new Error(`SSLRequest answered ${JSON.stringify(answer)}, not S`);
  }
  const tls = tlsConnect({ socket: raw, ca: readFileSync(ca), servername });
  await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
  return tls;
}

export interface HttpsReply {
  status: number;
  body: Record<string, unknown>;
  /** The certificate the server presented on this (new) connection. */
  fingerprint256: string;
}

/** One HTTPS request on a new connection, verifying the server against `ca` as localhost. */
export function httpsJson(port: number, path: string, opts: { ca: string; method?: string; token?: string }): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        path,
        method: opts.method ?? 'GET',
        ca: readFileSync(opts.ca),
        agent: false,
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      },
      (res) => {
        const fingerprint256 = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown>, fingerprint256 }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A pair a PostgreSQL server loads (ssl_cert_file, ssl_key_file): both owned by its user, the key 0600. */
export function forPostgres(pair: CertFiles): CertFiles {
  chownToPg(pair.cert);
  chownToPg(pair.key);
  return pair;
}
