// Client authentication methods. Each one runs its exchange over the
// connection's message stream and either returns (authenticated) or throws
// a FATAL PgError; AuthenticationOk is sent by the connection afterwards.
import { authenticationCleartextPassword } from './backend.js';
import { FrontendTag } from './tags.js';
import { PgError, SqlState } from './errors.js';
import type { Message } from '../hot/frames.js';

/** What an authentication method may do with the connection during start-up. */
export interface AuthExchange {
  send(bytes: Uint8Array): void;
  /** The next message from the client (a PasswordMessage, SASL response, ...). */
  receive(): Promise<Message>;
  /** Start-up parameters as sent (user, database, application_name, options, ...). */
  readonly params: ReadonlyMap<string, string>;
}

export interface Authenticator {
  readonly name: string;
  authenticate(x: AuthExchange): Promise<void>;
}

/** trust: everyone is let in. */
export const trustAuth: Authenticator = {
  name: 'trust',
  async authenticate(): Promise<void> {},
};

export type PasswordCheck = (user: string, password: string, params: ReadonlyMap<string, string>) => boolean | Promise<boolean>;

function authFailed(user: string): PgError {
  return new PgError({ severity: 'FATAL', code: SqlState.INVALID_PASSWORD, message: `password authentication failed for user "${user}"` });
}

/** Send AuthenticationCleartextPassword and read the client's PasswordMessage. */
export async function askCleartextPassword(x: AuthExchange): Promise<string> {
  x.send(authenticationCleartextPassword());
  const msg = await x.receive();
  if (msg.tag !== FrontendTag.PasswordMessage) {
    throw PgError.protocol(`expected password response, got message type ${msg.tag}`);
  }
  const nul = msg.body.indexOf(0);
  if (nul !== msg.body.length - 1) throw PgError.protocol('invalid password packet size');
  return msg.body.subarray(0, nul).toString('utf8');
}

/**
 * cleartext password: AuthenticationCleartextPassword, then the client's
 * PasswordMessage, checked by `check` (which may, for example, verify a
 * token passed as the password).
 */
export function cleartextPasswordAuth(check: PasswordCheck): Authenticator {
  return {
    name: 'password',
    async authenticate(x: AuthExchange): Promise<void> {
      const user = x.params.get('user') ?? '';
      const password = await askCleartextPassword(x);
      if (!(await check(user, password, x.params))) throw authFailed(user);
    },
  };
}
