// Helpers for the admin API tests: a WAL proposer (ProposerClient) that is
// elected and pushes real WAL, Prometheus text parsing, key pairs and tokens.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signToken, type TokenClaims } from '../../src/auth/jwt.js';
import type { Lsn } from '../../src/lsn.js';
import { ProposerClient } from '../../src/proposer/index.js';
import type { NodeId, SafeKeeperInfo } from '../../src/protocol/types.js';
import { PROPOSER_UUID, serverInfo, TENANT, TIMELINE, type RealWal } from '../daemon/helpers.js';

export interface Proposer {
  client: ProposerClient;
  nodeId: NodeId;
  greeting: SafeKeeperInfo;
}

export interface ProposerOptions {
  tenantId?: string;
  timelineId?: string;
  password?: string;
  applicationName?: string;
}

/** Connect, START_WAL_PUSH, greet, win the vote with a term above the stored one. */
export async function electProposer(port: number, wal: RealWal, o: ProposerOptions = {}): Promise<Proposer> {
  const tenantId = o.tenantId ?? TENANT;
  const timelineId = o.timelineId ?? TIMELINE;
  const client = await ProposerClient.connect({
    host: '127.0.0.1',
    port,
    tenantId,
    timelineId,
    password: o.password,
    applicationName: o.applicationName ?? 'test-proposer',
  });
  await client.startWalPush();
  const info = serverInfo(wal, 1n, { tenantId: Uint8Array.from(Buffer.from(tenantId, 'hex')), timelineId: Uint8Array.from(Buffer.from(timelineId, 'hex')) });
  const greeting = await client.greet(info);
  const nodeId = { term: greeting.server.nodeId.term + 1n, uuid: PROPOSER_UUID };
  const reply = await client.vote({ nodeId, vcl: greeting.flushLsn, epoch: nodeId.term });
  if (reply.term !== nodeId.term) throw new Error(`vote not granted: ${reply.term}`);
  return { client, nodeId, greeting };
}

export interface PushStats {
  appends: number;
  bytes: number;
  acked: Lsn;
}

/**
 * Push wal[from, to) in `chunk`-byte requests, up to `window` in flight;
 * every response must acknowledge its request's end, in order. Each request
 * reports the previously acknowledged end as commit_lsn.
 */
export async function pushWal(p: Proposer, wal: RealWal, from: Lsn, to: Lsn, chunk = 64 * 1024, window = 16): Promise<PushStats> {
  const ends: Lsn[] = [];
  let pos = from;
  let acked = from;
  let appends = 0;
  while (pos < to || ends.length > 0) {
    while (pos < to && ends.length < window) {
      const end = pos + BigInt(chunk) > to ? to : pos + BigInt(chunk);
      p.client.append({
        senderId: p.nodeId,
        beginLsn: pos,
        endLsn: end,
        restartLsn: wal.startLsn,
        commitLsn: acked,
        wal: wal.bytes.subarray(Number(pos - wal.startLsn), Number(end - wal.startLsn)),
      });
      ends.push(end);
      pos = end;
      appends++;
    }
    const r = await p.client.nextResponse();
    const want = ends.shift()!;
    if (r.flushLsn !== want) throw new Error(`flush_lsn ${r.flushLsn} in the response, expected ${want}`);
    acked = r.flushLsn;
  }
  return { appends, bytes: Number(to - from), acked };
}

/** An empty request that reports `commitLsn` (moves commit_lsn without WAL). */
export async function reportCommit(p: Proposer, wal: RealWal, at: Lsn, commitLsn: Lsn): Promise<void> {
  p.client.append({ senderId: p.nodeId, beginLsn: at, endLsn: at, restartLsn: wal.startLsn, commitLsn, wal: new Uint8Array(0) });
  await p.client.nextResponse();
}

// ---- Prometheus text ----

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the text exposition format (no timestamps, as prom-client writes it). */
export function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name, type);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const part of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[part[1]] = part[2];
    }
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    samples.push({ name: m[1], labels, value: v });
  }
  return { samples, types };
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when none. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

// ---- keys and tokens ----

export interface Keys {
  privateKey: KeyObject;
  publicPem: string;
  /** The public key written to a file (for --auth-public-key). */
  publicPath: string;
  /** The private key written to a file (for `walkeeper token`). */
  privatePath: string;
  token(claims: TokenClaims): string;
}

export function makeKeys(dir: string, name = 'auth'): Keys {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const publicPath = join(dir, `${name}.public.pem`);
  const privatePath = join(dir, `${name}.private.pem`);
  writeFileSync(publicPath, publicPem);
  writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
  return { privateKey, publicPem, publicPath, privatePath, token: (claims) => signToken(claims, privateKey) };
}

export { TENANT, TIMELINE };
