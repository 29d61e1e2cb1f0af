// SCRAM-SHA-256 (RFC 5802 / 7677) as a PostgreSQL client does it, without
// channel binding: PostgreSQL 14+ hashes passwords this way by default, so a
// proposer connecting to a stock primary with a password needs it.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { message } from '../pq/buffer.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

export class ScramError extends Error {
  override readonly name = 'ScramError';
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function attributes(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) m.set(part[0], part.slice(2));
  }
  return m;
}

/** One SCRAM exchange: first() → the client-first message; final(serverFirst) → client-final; verify(serverFinal). */
export class ScramClient {
  private readonly clientNonce: string;
  private readonly firstBare: string;
  private serverSignature: Buffer | null = null;

  constructor(
    private readonly password: string,
    nonce?: string,
    /** PostgreSQL takes the user name from the startup packet; libpq sends an empty one here. */
    user = '',
  ) {
    this.clientNonce = nonce ?? randomBytes(18).toString('base64');
    this.firstBare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${this.clientNonce}`;
  }

  /** The client-first message ("n,," GS2 header: no channel binding). */
  first(): string {
    return `n,,${this.firstBare}`;
  }

  final(serverFirst: string): string {
    const a = attributes(serverFirst);
    const nonce = a.get('r');
    const salt = a.get('s');
    const iterations = Number(a.get('i'));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) throw new ScramError(`malformed SCRAM server-first message "${serverFirst}"`);
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) throw new ScramError('SCRAM server nonce does not extend the client nonce');
    const salted = pbkdf2Sync(this.password.normalize('NFKC'), Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = sha256(clientKey);
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.firstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i] ^ signature[i];
    this.serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Check the server-final message: the server proves it knows the password too. */
  verify(serverFinal: string): void {
    const a = attributes(serverFinal);
    if (a.has('e')) throw new ScramError(`SCRAM authentication failed: ${a.get('e')}`);
    const v = a.get('v');
    if (!v || !this.serverSignature) throw new ScramError(`malformed SCRAM server-final message "${serverFinal}"`);
    const got = Buffer.from(v, 'base64');
    if (got.length !== this.serverSignature.length || !timingSafeEqual(got, this.serverSignature)) {
      throw new ScramError('SCRAM server signature does not match: the server does not know the password');
    }
  }
}

/** SASLInitialResponse: 'p', mechanism, int32 length, data. */
export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const bytes = Buffer.from(data, 'utf8');
  return message(0x70, (w) => void w.cstring(mechanism).i32(bytes.length).bytes(bytes));
}

/** SASLResponse: 'p', data. */
export function saslResponse(data: string): Buffer {
  return message(0x70, (w) => void w.bytes(Buffer.from(data, 'utf8')));
}
