// libpq connection strings as `walkeeper propose --primary` takes them:
// `key=value` pairs (values may be single-quoted, with \' and \\ escapes)
// or a `postgres://user:password@host:port/dbname?key=value` URI, with
// libpq's environment fallbacks (PGHOST, PGPORT, PGUSER, PGPASSWORD,
// PGDATABASE) and TLS as libpq's sslmode, sslrootcert, sslcert and sslkey
// say (tls-client.ts). Other libpq options that would change how the
// connection is secured are refused with a clear message instead of being
// ignored.
//
// Not node-postgres's pg-connection-string: it has no key/value parser
// (`host=h port=5` becomes a URL relative to "postgres://base"), and for
// URIs it decodes the database name with decodeURI (`my%2Fdb` stays
// encoded, `my%252Fdb` turns into the same name), reads the files named by
// sslcert/sslkey/sslrootcert while parsing, and warns or throws its own
// messages for sslmode. libpq decodes every escape; so does this.
import { userInfo } from 'node:os';
import { TlsSettingsError, tlsFromConnParams, type TlsClientSettings } from './tls-client.js';

export class ConnStringError extends Error {
  override readonly name = 'ConnStringError';
}

/** Where and as whom to connect. */
export interface ConnTarget {
  /** Host name or address, or a directory holding the Unix socket (starts with "/"). */
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  applicationName?: string;
  /** The `options` startup parameter (e.g. "-c ztimelineid=..."). */
  options?: string;
  connectTimeoutMs?: number;
  /** sslmode and the certificate files (libpq's default sslmode: prefer). */
  tls: TlsClientSettings;
  /** The name the server's certificate must carry under verify-full when it differs from `host` (host given with hostaddr). */
  serverName?: string;
}

const KNOWN = new Set([
  'host',
  'hostaddr',
  'port',
  'user',
  'dbname',
  'password',
  'application_name',
  'options',
  'connect_timeout',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'replication',
  'fallback_application_name',
  'client_encoding',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'target_session_attrs',
  'gssencmode',
  'passfile',
]);

/** libpq options about TLS that are not implemented: refused, so that nothing is silently less secure than asked. */
const UNSUPPORTED = new Set(['sslcrl', 'sslcrldir', 'sslpassword', 'sslsni', 'sslcompression', 'ssl_min_protocol_version', 'ssl_max_protocol_version', 'requirepeer', 'gsslib', 'krbsrvname']);

/** Split `key=value ...` into pairs. */
function parseKeyValue(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const n = text.length;
  const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  while (i < n) {
    while (i < n && isSpace(text[i])) i++;
    if (i >= n) break;
    let key = '';
    while (i < n && text[i] !== '=' && !isSpace(text[i])) key += text[i++];
    while (i < n && isSpace(text[i])) i++;
    if (text[i] !== '=') throw new ConnStringError(`missing "=" after "${key}" in connection info string`);
    i++;
    while (i < n && isSpace(text[i])) i++;
    let value = '';
    if (text[i] === "'") {
      i++;
      for (;;) {
        if (i >= n) throw new ConnStringError('unterminated quoted string in connection info string');
        const c = text[i++];
        if (c === "'") break;
        if (c === '\\' && i < n) value += text[i++];
        else value += c;
      }
    } else {
      while (i < n && !isSpace(text[i])) {
        const c = text[i++];
        if (c === '\\' && i < n) value += text[i++];
        else value += c;
      }
    }
    if (key === '') throw new ConnStringError('empty key in connection info string');
    out[key] = value;
  }
  return out;
}

function parseUri(text: string): Record<string, string> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConnStringError(`invalid connection URI "${text}"`);
  }
  const out: Record<string, string> = {};
  const dec = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new ConnStringError(`invalid percent-encoded token "${s}" in connection URI`);
    }
  };
  if (url.username) out.user = dec(url.username);
  if (url.password) out.password = dec(url.password);
  if (url.hostname) out.host = dec(url.hostname).replace(/^\[(.*)\]$/, '$1');
  if (url.port) out.port = url.port;
  const db = url.pathname.replace(/^\//, '');
  if (db) out.dbname = dec(db);
  for (const [k, v] of url.searchParams) out[k] = v;
  return out;
}

/** The raw key/value pairs of a connection string, checked against the keys libpq knows. */
export function parseConnString(text: string): Record<string, string> {
  const t = text.trim();
  const pairs = /^postgres(ql)?:\/\//.test(t) ? parseUri(t) : parseKeyValue(t);
  for (const k of Object.keys(pairs)) {
    if (UNSUPPORTED.has(k)) throw new ConnStringError(`connection option "${k}" is not supported`);
    if (!KNOWN.has(k)) throw new ConnStringError(`invalid connection option "${k}"`);
  }
  return pairs;
}

/** A connection string resolved to a target, with libpq's defaults and environment fallbacks. */
export function resolveConnString(text: string, env: NodeJS.ProcessEnv = process.env): ConnTarget {
  const p = parseConnString(text);
  let tls: TlsClientSettings;
  try {
    tls = tlsFromConnParams(p, env);
  } catch (err) {
    if (err instanceof TlsSettingsError) throw new ConnStringError(err.message);
    throw err;
  }
  const name = p.host || env.PGHOST || 'localhost';
  const host = p.hostaddr || name;
  if (host.includes(',')) throw new ConnStringError(`several hosts ("${host}") are not supported: name one primary`);
  const portText = p.port || env.PGPORT || '5432';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new ConnStringError(`invalid port "${portText}"`);
  let user = p.user || env.PGUSER;
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      user = 'postgres';
    }
  }
  const target: ConnTarget = { host, port, user, database: p.dbname || env.PGDATABASE || user, tls };
  if (name !== host && !name.startsWith('/')) target.serverName = name;
  const password = p.password ?? env.PGPASSWORD;
  if (password !== undefined) target.password = password;
  if (p.application_name) target.applicationName = p.application_name;
  if (p.options) target.options = p.options;
  const timeout = p.connect_timeout ?? env.PGCONNECT_TIMEOUT;
  if (timeout !== undefined && timeout !== '') {
    const s = Number(timeout);
    if (!Number.isFinite(s) || s < 0) throw new ConnStringError(`invalid connect_timeout "${timeout}"`);
    if (s > 0) target.connectTimeoutMs = Math.max(2, s) * 1000;
  }
  return target;
}

/** host:port for messages (the socket path for a Unix socket). */
export function describeTarget(t: { host: string; port: number }): string {
  return t.host.startsWith('/') ? `${t.host}/.s.PGSQL.${t.port}` : `${t.host}:${t.port}`;
}
