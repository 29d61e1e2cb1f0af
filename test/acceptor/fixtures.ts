// What the acceptor tests greet with: one node id shape and one server identity.
import type { NodeId, ServerInfo } from '../../src/protocol/types.js';

export const id = (term: bigint, u = 1): NodeId => ({ term, uuid: Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? u : 0)) });
export const SEG = 16 << 20;

/** ServerInfo of system 7, PostgreSQL timeline 1, 16 MiB segments; fields overridden by `over`. */
export function server(over: Partial<ServerInfo> = {}): ServerInfo {
  return {
    protocolVersion: 1,
    pgVersion: 150004,
    nodeId: id(99n, 9),
    systemId: 7n,
    timelineId: new Uint8Array(16).fill(0x22),
    walEnd: 0n,
    timeline: 1,
    walSegSize: SEG,
    tenantId: new Uint8Array(16).fill(0x11),
    ...over,
  };
}
