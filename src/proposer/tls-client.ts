// TLS for the proposer's PostgreSQL connections, with libpq's meanings:
//   sslmode      disable | allow | prefer | require | verify-ca | verify-full
//                (allow: plaintext first, TLS if the server refuses it;
//                prefer: TLS first, plaintext if TLS or the start-up over it
//                fails; require: TLS, the chain checked only when a root
//                certificate is at hand; verify-ca: the chain always;
//                verify-full: the chain and the host name)
//   sslrootcert  CA certificates (PEM) to check the server with
//                (default ~/.postgresql/root.crt, when it exists)
//   sslcert/sslkey  a client certificate and its key (default
//                ~/.postgresql/postgresql.crt/.key, when they exist)
// and what to do with the answer to SSLRequest (the TLS handshake on the
// connected socket, or plaintext).
// Files are read at each connection attempt (as libpq does), so rotated
// certificates are used from the next reconnect on. Unlike libpq, a file
// named explicitly must exist: libpq silently skips a missing sslcert, and a
// missing sslrootcert under sslmode=require.
import { readFileSync, statSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** libpq's default when nothing says otherwise. */
export const DEFAULT_SSLMODE: SslMode = 'prefer';

/** How one connection uses TLS: sslmode and the files it names (paths, not yet read). */
export interface TlsClientSettings {
  mode: SslMode;
  rootCert?: string;
  cert?: string;
  key?: string;
}

/** No TLS at all: no SSLRequest is sent. */
export const NO_TLS: TlsClientSettings = { mode: 'disable' };

/** The settings or the files they name are unusable: retrying will not help. */
export class TlsSettingsError extends Error {
  override readonly name = 'TlsSettingsError';
}

/** The server would not or could not set up TLS (refused it, or the handshake failed). */
export class TlsHandshakeError extends Error {
  override readonly name = 'TlsHandshakeError';
}

export function parseSslMode(text: string): SslMode {
  if (!(SSL_MODES as readonly string[]).includes(text)) throw new TlsSettingsError(`invalid sslmode value "${text}" (expected one of ${SSL_MODES.join(', ')})`);
  return text as SslMode;
}

/** The settings from connection-string pairs, with libpq's environment fallbacks (PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY). */
export function tlsFromConnParams(p: Readonly<Record<string, string>>, env: NodeJS.ProcessEnv = process.env): TlsClientSettings {
  const settings: TlsClientSettings = { mode: parseSslMode(p.sslmode || env.PGSSLMODE || DEFAULT_SSLMODE) };
  const rootCert = p.sslrootcert || env.PGSSLROOTCERT;
  const cert = p.sslcert || env.PGSSLCERT;
  const key = p.sslkey || env.PGSSLKEY;
  if (rootCert) settings.rootCert = rootCert;
  if (cert) settings.cert = cert;
  if (key) settings.key = key;
  return checkTlsSettings(settings);
}

/** Refuses combinations that cannot work; returns the settings. */
export function checkTlsSettings(s: TlsClientSettings): TlsClientSettings {
  parseSslMode(s.mode);
  if (s.mode === 'disable' && (s.rootCert || s.cert || s.key)) throw new TlsSettingsError('sslrootcert, sslcert and sslkey need an sslmode other than disable');
  if (s.key && !s.cert) throw new TlsSettingsError('sslkey needs sslcert');
  return s;
}

/** The order of attempts: TLS or not, the second one when the first fails as libpq retries. No TLS over a Unix socket (libpq neither). */
export function tlsAttempts(s: TlsClientSettings | undefined, host: string): readonly boolean[] {
  if (!s || host.startsWith('/')) return [false];
  switch (s.mode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, true];
    case 'prefer':
      return [true, false];
    default:
      return [true];
  }
}

/** Whether an attempt that failed with `err` is followed by the next one (libpq: a refused start-up under allow/prefer, a failed handshake under prefer). */
export function tryTheOtherWay(s: TlsClientSettings | undefined, usedTls: boolean, err: unknown, serverRefused: boolean): boolean {
  if (!s) return false;
  if (s.mode === 'allow') return !usedTls && serverRefused;
  if (s.mode === 'prefer') return err instanceof TlsHandshakeError || (usedTls && serverRefused);
  return false;
}

function defaultFile(name: string): string | null {
  try {
    const path = join(homedir(), '.postgresql', name);
    return statSync(path).isFile() ? path : null;
  } catch {
    return null;
  }
}

/** A PEM file's bytes; TlsSettingsError naming the file and why when it cannot be read. */
export function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TlsSettingsError(`could not read ${what} file "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** libpq's rule: a private key must not be readable by group or others (group read is allowed when root owns it). */
function checkKeyPermissions(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new TlsSettingsError(`could not read private key file "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const loose = st.uid === 0 ? st.mode & 0o037 : st.mode & 0o077;
  if (loose !== 0) {
    throw new TlsSettingsError(
      `private key file "${path}" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or u=rw,g=r (0640) or less if owned by root`,
    );
  }
}

/**
 * Node's tls.connect options for these settings, files read now: the
 * chain is checked when a root certificate is at hand (always under verify-*),
 * the name `serverName` only under verify-full.
 */
export function tlsConnectOptions(s: TlsClientSettings, serverName: string): ConnectionOptions {
  const opts: ConnectionOptions = {};
  const rootCert = s.rootCert ?? defaultFile('root.crt');
  if (rootCert) opts.ca = readPem(rootCert, 'root certificate');
  else if (s.mode === 'verify-ca' || s.mode === 'verify-full') {
    throw new TlsSettingsError(
      `sslmode=${s.mode} needs the CA certificate: give sslrootcert (there is no ${join(homedir(), '.postgresql', 'root.crt')}), or use an sslmode that does not verify the server`,
    );
  }
  const cert = s.cert ?? defaultFile('postgresql.crt');
  if (cert) {
    const key = s.key ?? join(homedir(), '.postgresql', 'postgresql.key');
    checkKeyPermissions(key);
    opts.cert = readPem(cert, 'client certificate');
    opts.key = readPem(key, 'private key');
  }
  opts.rejectUnauthorized = rootCert !== null && rootCert !== undefined;
  opts.checkServerIdentity = s.mode === 'verify-full' ? (_host, peer) => checkServerIdentity(serverName, peer) : () => undefined;
  // SNI carries a host name, never an address (libpq's sslsni=1).
  if (!isIP(serverName)) opts.servername = serverName;
  return opts;
}

/** How the server answered SSLRequest: go on in TLS, in plaintext, or read the ErrorResponse that follows. */
export type SslAnswer = 'tls' | 'plain' | 'error';

/**
 * Act on the first bytes read after SSLRequest (its one-byte answer): 'S'
 * → TLS, 'N' → plaintext unless the mode requires TLS, 'E' → the bytes are
 * the server's ErrorResponse. Throws TlsHandshakeError otherwise. `where`
 * names the server in messages.
 */
export function sslAnswer(chunk: Uint8Array, s: TlsClientSettings, where: string): SslAnswer {
  const answer = String.fromCharCode(chunk[0]);
  if (answer === 'E') return 'error';
  // Bytes after the answer came before any encryption: a man in the middle may have put them there.
  if (chunk.length > 1) throw new TlsHandshakeError(`${where} sent unencrypted data after its answer to SSLRequest`);
  if (answer === 'N') {
    if (s.mode === 'require' || s.mode === 'verify-ca' || s.mode === 'verify-full') {
      throw new TlsHandshakeError(`${where} does not support SSL, but SSL was required (sslmode=${s.mode})`);
    }
    return 'plain';
  }
  if (answer !== 'S') throw new TlsHandshakeError(`${where} sent an invalid answer to SSLRequest: 0x${chunk[0].toString(16)}`);
  return 'tls';
}

/** The TLS handshake on `raw` after the server answered 'S'; resolves with the socket to speak the protocol on. */
export function startTls(raw: Socket, s: TlsClientSettings, serverName: string, where: string): Promise<TLSSocket> {
  return new Promise<TLSSocket>((resolve, reject) => {
    let options: ConnectionOptions;
    try {
      options = tlsConnectOptions(s, serverName);
    } catch (err) {
      return reject(err as Error);
    }
    const secure: TLSSocket = tlsConnect({ ...options, socket: raw });
    // Node's advice about system CAs does not apply: the CAs are the ones sslrootcert names.
    const onError = (err: Error): void => reject(new TlsHandshakeError(`TLS handshake with ${where} failed: ${err.message.replace(/; if the root CA is installed locally.*$/s, '')}`));
    secure.once('error', onError);
    secure.once('secureConnect', () => {
      secure.off('error', onError);
      resolve(secure);
    });
  });
}

/** Read the files the settings name now, so that a typo fails at start-up rather than at every connection attempt. */
export function checkTlsFiles(s: TlsClientSettings): void {
  if (s.mode !== 'disable') tlsConnectOptions(s, 'localhost');
}
