// NodeId: a proposer's (term, uuid), the ballot of the protocol. Ordered by
// term, then by the uuid bytes compared lexicographically.
import type { NodeId } from './types.js';
import { UUID_SIZE } from './layout.js';

/** < 0, 0, > 0 as a is below, equal to, above b. */
export function compareNodeId(a: NodeId, b: NodeId): number {
  if (a.term !== b.term) return a.term < b.term ? -1 : 1;
  const n = Math.min(a.uuid.length, b.uuid.length);
  for (let i = 0; i < n; i++) {
    if (a.uuid[i] !== b.uuid[i]) return a.uuid[i] - b.uuid[i];
  }
  return a.uuid.length - b.uuid.length;
}

export function nodeIdEquals(a: NodeId, b: NodeId): boolean {
  return compareNodeId(a, b) === 0;
}

export function zeroNodeId(): NodeId {
  return { term: 0n, uuid: new Uint8Array(UUID_SIZE) };
}

export function copyNodeId(id: NodeId): NodeId {
  return { term: id.term, uuid: Uint8Array.from(id.uuid) };
}

/** `term/uuid-hex`, for log lines and error messages. */
export function formatNodeId(id: NodeId): string {
  return `${id.term}/${Buffer.from(id.uuid).toString('hex')}`;
}
