// JSON Web Tokens signed with Ed25519 (JWS "EdDSA"), checked with Node's
// own crypto; no JWT library. The claims and scopes are Neon's:
//
//   { "scope": "safekeeperdata" }                         everything on the node
//   { "scope": "tenant", "tenant_id": "<32 hex digits>" } that tenant's timelines
//
// Optional "exp" and "nbf" (seconds since the epoch) are enforced. Any
// other scope is valid JWT but not for a safekeeper: it is refused (403 /
// 28000), as a token of the wrong tenant is.
import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ID_HEX } from '../timeline/ids.js';

export type Scope = 'safekeeperdata' | 'tenant';

/** The verified claims walkeeper acts on. */
export interface Claims {
  /** The scope as written in the token (only 'safekeeperdata' and 'tenant' grant anything). */
  scope: string;
  /** Lower-case tenant id of a tenant token. */
  tenantId?: string;
  /** Expiry, seconds since the epoch. */
  exp?: number;
}

/** The token is missing or cannot be trusted: HTTP 401, pg 28P01. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly reason: 'missing' | 'malformed' | 'algorithm' | 'signature' | 'expired' | 'not-yet-valid' | 'claims',
    message: string,
  ) {
    super(message);
  }
}

/** The token is genuine but does not allow this: HTTP 403, pg 28000. */
export class ForbiddenError extends Error {
  override readonly name = 'ForbiddenError';
}

const B64URL = /^[A-Za-z0-9_-]*$/;
/** Tokens longer than this are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 8192;

function b64urlJson(part: string, what: string): Record<string, unknown> {
  if (!B64URL.test(part)) throw new AuthError('malformed', `malformed token: the ${what} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new AuthError('malformed', `malformed token: the ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AuthError('malformed', `malformed token: the ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function readKeys(pem: string, source: string): KeyObject[] {
  const blocks = pem.match(/-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${source}: no PEM public key found`);
  return blocks.map((block, i) => {
    let key: KeyObject;
    try {
      key = createPublicKey(block);
    } catch (err) {
      throw new Error(`${source}: PEM block ${i + 1} is not a public key: ${(err as Error).message}`);
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${source}: key ${i + 1} is ${key.asymmetricKeyType ?? key.type}, expected an Ed25519 public key`);
    return key;
  });
}

function readKeyFile(path: string): KeyObject[] {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`cannot read the auth public key ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  return readKeys(pem, path);
}

/**
 * Verifies tokens against one or more Ed25519 public keys (several PEM
 * blocks in one file let keys be rotated: a token signed by any of them
 * is accepted). Keys read from a file can be re-read (reload()).
 */
/** An exp/nbf claim for a message: ISO 8601, or the bare number when no date can show it (Date's range is ±8.64e12 s). */
function claimTime(seconds: number): string {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? `${seconds} seconds after 1970` : d.toISOString();
}

export class JwtVerifier {
  private constructor(
    private keys: KeyObject[],
    private readonly now: () => number,
    /** The file the keys came from, if any. */
    readonly path: string | null = null,
  ) {}

  /** From PEM text holding one or more SPKI public keys (`-----BEGIN PUBLIC KEY-----`). */
  static fromPem(pem: string, opts: { source?: string; now?: () => number } = {}): JwtVerifier {
    return new JwtVerifier(readKeys(pem, opts.source ?? 'public key'), opts.now ?? (() => Date.now() / 1000));
  }

  /** From a PEM file; throws an Error with one readable line when it cannot be used. */
  static fromFile(path: string, opts: { now?: () => number } = {}): JwtVerifier {
    return new JwtVerifier(readKeyFile(path), opts.now ?? (() => Date.now() / 1000), path);
  }

  /**
   * Read the key file again: tokens are checked against the new keys from
   * now on. When the file cannot be used, throws (one line) and the keys in
   * force stay. Returns how many keys are now in force.
   */
  reload(): number {
    if (this.path === null) throw new Error('the auth public keys were not read from a file');
    this.keys = readKeyFile(this.path);
    return this.keys.length;
  }

  get keyCount(): number {
    return this.keys.length;
  }

  /** Check signature, algorithm, time limits and claim shapes; AuthError when the token cannot be trusted. */
  verify(token: string): Claims {
    if (token === '') throw new AuthError('missing', 'no token given');
    if (token.length > MAX_TOKEN_LENGTH) throw new AuthError('malformed', `malformed token: longer than ${MAX_TOKEN_LENGTH} characters`);
    const parts = token.split('.');
    if (parts.length !== 3) throw new AuthError('malformed', 'malformed token: expected three dot-separated parts');
    const [h, p, s] = parts;
    const header = b64urlJson(h, 'header');
    if (header.alg !== 'EdDSA') {
      throw new AuthError('algorithm', `token algorithm ${JSON.stringify(header.alg ?? null)} is not accepted: only EdDSA (Ed25519)`);
    }
    if (header.crit !== undefined) throw new AuthError('malformed', 'token header has "crit" extensions, which are not supported');
    if (!B64URL.test(s)) throw new AuthError('malformed', 'malformed token: the signature is not base64url');
    const sig = Buffer.from(s, 'base64url');
    if (sig.length !== 64) throw new AuthError('signature', 'invalid token signature');
    const data = Buffer.from(`${h}.${p}`, 'ascii');
    if (!this.keys.some((k) => cryptoVerify(null, data, k, sig))) throw new AuthError('signature', 'invalid token signature');

    const payload = b64urlJson(p, 'payload');
    const now = this.now();
    const exp = payload.exp;
    if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp))) throw new AuthError('claims', 'token claim "exp" is not a number');
    if (typeof exp === 'number' && now >= exp) throw new AuthError('expired', `token expired at ${claimTime(exp)}`);
    const nbf = payload.nbf;
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) throw new AuthError('claims', 'token claim "nbf" is not a number');
    if (typeof nbf === 'number' && now < nbf) throw new AuthError('not-yet-valid', `token is not valid before ${claimTime(nbf)}`);
    const scope = payload.scope;
    if (typeof scope !== 'string') throw new AuthError('claims', 'token has no "scope" claim');
    const claims: Claims = { scope };
    const tenant = payload.tenant_id;
    if (tenant !== undefined && tenant !== null) {
      if (typeof tenant !== 'string' || !ID_HEX.test(tenant)) throw new AuthError('claims', 'token claim "tenant_id" is not 32 hex digits');
      claims.tenantId = tenant.toLowerCase();
    }
    if (typeof exp === 'number') claims.exp = exp;
    return claims;
  }
}

/**
 * May these claims act on `tenantId` (undefined: on the whole node)?
 * Throws ForbiddenError saying why not.
 */
export function checkScope(claims: Claims, tenantId: string | undefined): void {
  if (claims.scope === 'safekeeperdata') return;
  if (claims.scope !== 'tenant') throw new ForbiddenError(`a token with scope "${claims.scope}" is not accepted by a safekeeper (use "tenant" or "safekeeperdata")`);
  if (!claims.tenantId) throw new ForbiddenError('a token with scope "tenant" must carry a tenant_id');
  if (tenantId === undefined) throw new ForbiddenError('this needs a token with scope "safekeeperdata"; a tenant token is limited to its own tenant');
  if (tenantId.toLowerCase() !== claims.tenantId) throw new ForbiddenError(`the token is for tenant ${claims.tenantId}, not for tenant ${tenantId.toLowerCase()}`);
}

// ---- minting (the `walkeeper token` command and tests) ----

export interface TokenClaims {
  scope: string;
  tenant_id?: string;
  /** Seconds since the epoch. */
  exp?: number;
  nbf?: number;
  iat?: number;
  [claim: string]: unknown;
}

/** The private key from PKCS#8 PEM; Error unless it is Ed25519. */
export function loadPrivateKey(pem: string, source = 'private key'): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`${source} is not a private key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${source} is ${key.asymmetricKeyType}, expected an Ed25519 private key`);
  return key;
}

/** A compact JWS: header {"alg":"EdDSA","typ":"JWT"}, the claims, an Ed25519 signature. */
export function signToken(claims: TokenClaims, privateKey: KeyObject): string {
  const h = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT' })).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const sig = cryptoSign(null, Buffer.from(`${h}.${p}`, 'ascii'), privateKey);
  return `${h}.${p}.${sig.toString('base64url')}`;
}
