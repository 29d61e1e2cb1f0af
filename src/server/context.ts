// What every connection handler shares: the timelines, the logger, the
// daemon's settings and command table, and the per-connection state
// (start-up parameters, the timeline named in them).
import type { Logger } from '../log.js';
import type { Authenticator } from '../pq/auth.js';
import type { ServerConnection, StartupInfo } from '../pq/connection.js';
import { PgError, SqlState } from '../pq/errors.js';
import { InvalidIdError, parseId, type TimelineKey } from '../timeline/ids.js';
import type { TimelineRegistry } from '../timeline/registry.js';
import type { CommandTable } from './dispatch.js';
import type { ServerTls } from './tls.js';
import type { ConnectionLimits } from './limits.js';

export interface ServerContext {
  registry: TimelineRegistry;
  log: Logger;
  /** This safekeeper's numeric id (safekeeper.id / --id), if any. */
  nodeId: number | null;
  noSync: boolean;
  /** Set when the daemon begins to shut down: sessions stop taking new work. */
  stopping: boolean;
  /** The server_version announced to clients. */
  serverVersion: string;
  /** How clients authenticate (default: trust). */
  auth?: Authenticator;
  /** TLS on this listener (absent: SSLRequest is answered `N`). */
  tls?: ServerTls;
  /** Told about connection-level events (metrics). */
  observer?: ServerObserver;
  /** The commands this daemon answers, by keyword. */
  commands: CommandTable;
  /** Connection limits (DEFAULT_CONNECTION_LIMITS when absent). */
  limits?: ConnectionLimits;
}

/** Watches the pq listener (the metrics registry implements it). */
export interface ServerObserver {
  /** An ErrorResponse with this SQLSTATE was sent to a client. */
  errorSent?(sqlstate: string): void;
  /** A TLS handshake finished with this protocol version (null: it failed). */
  tlsHandshake?(protocol: string | null): void;
}

/** The ids a client named in its start-up packet (either may be absent). */
export interface NamedTimeline {
  tenantId?: string;
  timelineId?: string;
}

/** Per-connection state handed to command handlers. */
export interface ClientSession {
  ctx: ServerContext;
  conn: ServerConnection;
  info: StartupInfo;
  named: NamedTimeline;
  log: Logger;
}

const TENANT_KEYS = ['ztenantid', 'tenant_id'];
const TIMELINE_KEYS = ['ztimelineid', 'timeline_id'];

function pick(info: StartupInfo, keys: string[]): string | undefined {
  for (const k of keys) {
    const v = info.get(k);
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * The tenant and timeline ids named in the start-up parameters (directly or
 * as settings inside options). Anything but 32 hex digits is refused
 * here, before any file is looked at.
 */
export function namedTimeline(info: StartupInfo): NamedTimeline {
  const out: NamedTimeline = {};
  try {
    const tenant = pick(info, TENANT_KEYS);
    const timeline = pick(info, TIMELINE_KEYS);
    if (tenant !== undefined) out.tenantId = parseId(tenant, 'tenant id');
    if (timeline !== undefined) out.timelineId = parseId(timeline, 'timeline id');
  } catch (err) {
    if (err instanceof InvalidIdError) {
      throw new PgError({ severity: 'FATAL', code: SqlState.INVALID_PARAMETER_VALUE, message: err.message });
    }
    throw err;
  }
  return out;
}

/** Both ids, or an error saying how to name them. */
export function requireTimeline(named: NamedTimeline): TimelineKey {
  if (!named.tenantId || !named.timelineId) {
    throw new PgError({
      code: SqlState.INVALID_PARAMETER_VALUE,
      message: 'no timeline named in the connection parameters',
      hint: "Connect with options '-c ztenantid=<32 hex digits> -c ztimelineid=<32 hex digits>'.",
    });
  }
  return { tenantId: named.tenantId, timelineId: named.timelineId };
}
