// `walkeeper token`: mint an EdDSA JWT for the safekeeper from an Ed25519
// private key, or make a new key pair.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadPrivateKey, signToken, type TokenClaims } from '../auth/jwt.js';
import { ID_HEX } from '../timeline/ids.js';
import { CommandError, UsageError } from './errors.js';
import { parseDuration } from './units.js';
import { parseCommandLine, showHelp } from './options.js';

const HELP = `usage: walkeeper token --private-key PATH [--scope SCOPE] [--tenant-id ID] [--expires-in DURATION]
       walkeeper token --new-key-pair PREFIX

Print a token (a JWT signed with EdDSA) for a walkeeper started with
--auth-public-key. Send it as the password on the PostgreSQL port and as
"Authorization: Bearer <token>" on HTTP.

options:
  --private-key PATH     Ed25519 private key, PEM (PKCS#8)
  --scope SCOPE          safekeeperdata: everything on the node;
                         tenant: only the timelines of --tenant-id
                         (default: tenant when --tenant-id is given)
  --tenant-id ID         32 hex digits (scope tenant)
  --expires-in DURATION  add an "exp" claim: N seconds, or Ns, Nm, Nh, Nd (default: no expiry)
  --new-key-pair PREFIX  write a new key pair: PREFIX.private.pem (mode 0600) and
                         PREFIX.public.pem (for --auth-public-key); nothing is overwritten
  -h, --help             show this help
`;

function newKeyPair(prefix: string): number {
  const priv = `${prefix}.private.pem`;
  const pub = `${prefix}.public.pem`;
  for (const f of [priv, pub]) if (existsSync(f)) throw new CommandError(`${f} already exists; not overwriting it`);
  const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  try {
    writeFileSync(priv, privateKey, { mode: 0o600, flag: 'wx' });
    writeFileSync(pub, publicKey, { mode: 0o644, flag: 'wx' });
  } catch (err) {
    throw new CommandError(`cannot write the key pair: ${(err as Error).message}`);
  }
  process.stdout.write(`private key: ${priv}\npublic key:  ${pub}\n`);
  return 0;
}

export async function tokenCommand(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv, {
    command: 'token',
    options: {
      privateKey: { names: ['--private-key'], value: true },
      scope: {
        names: ['--scope'],
        value: true,
        parse: (v) => {
          if (v !== 'tenant' && v !== 'safekeeperdata') throw new UsageError(`--scope: "${v}" is not a safekeeper scope: use tenant or safekeeperdata`);
          return v;
        },
      },
      tenantId: {
        names: ['--tenant-id'],
        value: true,
        parse: (v) => {
          if (!ID_HEX.test(v)) throw new UsageError(`--tenant-id: invalid tenant id "${v}": expected 32 hex digits`);
          return v.toLowerCase();
        },
      },
      expiresIn: { names: ['--expires-in'], value: true, parse: (v) => parseDuration(v, '--expires-in') },
      newKeyPair: { names: ['--new-key-pair'], value: true },
    },
  });
  if (parsed === 'help') return showHelp(HELP);
  const args = parsed.options;
  if (args.newKeyPair !== undefined) {
    if (args.privateKey || args.scope || args.tenantId || args.expiresIn) throw new UsageError('--new-key-pair takes no other option');
    return newKeyPair(args.newKeyPair);
  }
  if (!args.privateKey) throw new UsageError('--private-key is required (or --new-key-pair to make one)');
  const scope = args.scope ?? (args.tenantId ? 'tenant' : undefined);
  if (!scope) throw new UsageError('--scope is required: tenant (with --tenant-id) or safekeeperdata');
  if (scope === 'tenant' && !args.tenantId) throw new UsageError('--scope tenant needs --tenant-id');
  if (scope === 'safekeeperdata' && args.tenantId) throw new UsageError('--tenant-id goes with --scope tenant only');
  let pem: string;
  try {
    pem = readFileSync(args.privateKey, 'utf8');
  } catch (err) {
    throw new CommandError(`cannot read ${args.privateKey}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let key;
  try {
    key = loadPrivateKey(pem, args.privateKey);
  } catch (err) {
    throw new CommandError((err as Error).message);
  }
  const now = Math.floor(Date.now() / 1000);
  const claims: TokenClaims = { scope, iat: now };
  if (args.tenantId) claims.tenant_id = args.tenantId;
  if (args.expiresIn !== undefined) claims.exp = now + args.expiresIn;
  process.stdout.write(signToken(claims, key) + '\n');
  return 0;
}
