// Certificates for TLS tests, made with openssl in a directory the test
// owns: a CA, and server or client certificates it signs (P-256 keys, valid
// for a day, names as subjectAltName). A second CA makes "the wrong CA".
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chownToPg } from './pg.js';

export interface CertPair {
  cert: string;
  key: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA named `name`: dir/name.crt, dir/name.key. */
export function makeCa(dir: string, name: string): CertPair {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', pair.key, '-out', pair.cert, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return pair;
}

export interface LeafOptions {
  /** Common name (a client certificate's CN is the user name PostgreSQL checks under clientcert=verify-full). */
  cn: string;
  /** DNS names and IP addresses for subjectAltName. */
  dns?: string[];
  ips?: string[];
}

/** A certificate for `opts.cn` signed by `ca`: dir/file.crt, dir/file.key (0600). */
export function makeLeaf(dir: string, ca: CertPair, file: string, opts: LeafOptions): CertPair {
  const pair = { cert: join(dir, `${file}.crt`), key: join(dir, `${file}.key`) };
  const csr = join(dir, `${file}.csr`);
  const ext = join(dir, `${file}.ext`);
  const san = [...(opts.dns ?? []).map((d) => `DNS:${d}`), ...(opts.ips ?? []).map((i) => `IP:${i}`)];
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n${san.length ? `subjectAltName=${san.join(',')}\n` : ''}`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', pair.key, '-out', csr, '-subj', `/CN=${opts.cn}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(Date.now()), '-out', pair.cert, '-days', '1', '-extfile', ext]);
  chmodSync(pair.key, 0o600);
  return pair;
}

/** A server pair PostgreSQL will load: owned by its user, key 0600. */
export function forPostgres(pair: CertPair): CertPair {
  chownToPg(pair.cert);
  chownToPg(pair.key);
  return pair;
}
