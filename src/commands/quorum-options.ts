// The options every command that talks to the safekeepers of one timeline
// shares (propose, sync-safekeepers, promote): the safekeeper list, the
// tenant and timeline ids, and the token file.
import { readFileSync } from 'node:fs';
import { createLogger, type Logger } from '../log.js';
import type { SafekeeperAddress } from '../proposer/safekeeper.js';
import { UsageError } from './errors.js';
import { parseListenAddress } from './run.js';

export const QUORUM_OPTIONS = {
  safekeepers: { names: ['--safekeepers'], value: true, required: true },
  tenant: { names: ['--tenant'], value: true, required: true },
  timeline: { names: ['--timeline'], value: true, required: true },
} as const;

export const QUORUM_HELP = `  --safekeepers LIST         comma-separated HOST:PORT of every safekeeper's
                             PostgreSQL-protocol port
  --tenant ID                tenant id, 32 hex digits
  --timeline ID              timeline id, 32 hex digits`;

export interface QuorumTarget {
  safekeepers: SafekeeperAddress[];
  /** Lower-case, 32 hex digits each. */
  tenantId: string;
  timelineId: string;
}

const HEX32 = /^[0-9a-fA-F]{32}$/;

/** Check the shared options' values. */
export function quorumTarget(got: { safekeepers: string; tenant: string; timeline: string }): QuorumTarget {
  const safekeepers = got.safekeepers
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => parseListenAddress(s, '--safekeepers'));
  if (safekeepers.length === 0) throw new UsageError('--safekeepers: no address given');
  const seen = new Set<string>();
  for (const s of safekeepers) {
    const k = `${s.host}:${s.port}`;
    if (seen.has(k)) throw new UsageError(`--safekeepers: ${k} is listed twice`);
    seen.add(k);
  }
  for (const [opt, v] of [['--tenant', got.tenant], ['--timeline', got.timeline]] as const) {
    if (!HEX32.test(v)) throw new UsageError(`${opt}: invalid id "${v}": expected 32 hex digits`);
  }
  return { safekeepers, tenantId: got.tenant.toLowerCase(), timelineId: got.timeline.toLowerCase() };
}

/** The password/token in `file`, for the safekeepers. */
export function readTokenFile(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UsageError(`${option}: ${(err as Error).message}`);
  }
}

/**
 * The log of a command whose stdout is its result: to stderr, and silent
 * unless WALKEEPER_LOG_LEVEL asks for lines (failures are the one line the
 * command prints).
 */
export function resultCommandLogger(): Logger {
  return createLogger({ fd: 2, level: process.env.WALKEEPER_LOG_LEVEL ? undefined : 'silent' });
}
