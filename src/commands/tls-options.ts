// The command-line face of the client TLS settings (proposer/tls-client.ts)
// for commands that connect to safekeepers' PostgreSQL-protocol ports:
//   --safekeeper-sslmode MODE  --safekeeper-sslrootcert FILE
//   --safekeeper-sslcert FILE  --safekeeper-sslkey FILE
// with libpq's meanings and its default, prefer. A command adopts them by
// spreading SAFEKEEPER_TLS_OPTIONS into its option declarations and passing
// safekeeperTls(parsed.options) as `tls` to ProposerClient/PgClient.
import { checkTlsFiles, checkTlsSettings, DEFAULT_SSLMODE, parseSslMode, SSL_MODES, TlsSettingsError, type SslMode, type TlsClientSettings } from '../proposer/tls-client.js';
import { ConnStringError, resolveConnString, type ConnTarget } from '../proposer/connstr.js';
import { UsageError } from './errors.js';

function sslModeOption(text: string, name: string): SslMode {
  try {
    return parseSslMode(text);
  } catch (err) {
    throw new UsageError(`${name}: ${(err as Error).message}`);
  }
}

function fileOption(text: string, name: string): string {
  if (text === '') throw new UsageError(`${name}: empty file name`);
  return text;
}

export const SAFEKEEPER_TLS_OPTIONS = {
  safekeeperSslmode: { names: ['--safekeeper-sslmode'], value: true, parse: sslModeOption },
  safekeeperSslrootcert: { names: ['--safekeeper-sslrootcert'], value: true, parse: fileOption },
  safekeeperSslcert: { names: ['--safekeeper-sslcert'], value: true, parse: fileOption },
  safekeeperSslkey: { names: ['--safekeeper-sslkey'], value: true, parse: fileOption },
} as const;

export const SAFEKEEPER_TLS_HELP = `  --safekeeper-sslmode MODE  TLS towards the safekeepers, as libpq's sslmode:
                             ${SSL_MODES.slice(0, 3).join(', ')},
                             ${SSL_MODES.slice(3).join(', ')} (default ${DEFAULT_SSLMODE})
  --safekeeper-sslrootcert F CA certificate(s) to verify the safekeepers with
  --safekeeper-sslcert F     client certificate to present to the safekeepers
  --safekeeper-sslkey F      its private key (mode 0600)
`;

export interface SafekeeperTlsValues {
  safekeeperSslmode?: SslMode;
  safekeeperSslrootcert?: string;
  safekeeperSslcert?: string;
  safekeeperSslkey?: string;
}

/** The settings the options give, their files checked now (a UsageError names what is wrong). */
export function safekeeperTls(o: SafekeeperTlsValues): TlsClientSettings {
  const s: TlsClientSettings = { mode: o.safekeeperSslmode ?? DEFAULT_SSLMODE };
  if (o.safekeeperSslrootcert !== undefined) s.rootCert = o.safekeeperSslrootcert;
  if (o.safekeeperSslcert !== undefined) s.cert = o.safekeeperSslcert;
  if (o.safekeeperSslkey !== undefined) s.key = o.safekeeperSslkey;
  return usable(s, '--safekeeper-ssl*');
}

/** `s` when its combination and files are good; otherwise a UsageError prefixed with `what`. */
export function usable(s: TlsClientSettings, what: string): TlsClientSettings {
  try {
    checkTlsSettings(s);
    checkTlsFiles(s);
    return s;
  } catch (err) {
    if (err instanceof TlsSettingsError) throw new UsageError(`${what}: ${err.message}`);
    throw err;
  }
}

/** A libpq connection string given as option `name` (--primary, --standby), resolved, with usable TLS settings; otherwise a UsageError. */
export function connStringOption(text: string, name: string): ConnTarget {
  let target: ConnTarget;
  try {
    target = resolveConnString(text);
  } catch (err) {
    if (err instanceof ConnStringError) throw new UsageError(`${name}: ${err.message}`);
    throw err;
  }
  usable(target.tls, name);
  return target;
}
