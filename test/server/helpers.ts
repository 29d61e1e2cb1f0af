// Pushing real WAL to a daemon in the shape a proposer does, for the tests
// of the listener.
import type { Lsn } from '../../src/lsn.js';
import type { NodeId } from '../../src/protocol/types.js';
import type { PushClient, RealWal } from '../daemon/helpers.js';

/** The most WAL a proposer puts in one append. */
const MAX_APPEND = 128 * 1024;

/** Append wal[from, to) in 128 KiB chunks reporting `commit` as commit_lsn; resolves once every append is acknowledged. */
export async function pushWal(c: PushClient, wal: RealWal, nodeId: NodeId, from: Lsn, to: Lsn, commit: Lsn): Promise<void> {
  let sent = 0;
  for (let pos = from; pos < to; pos += BigInt(MAX_APPEND), sent++) {
    const end = pos + BigInt(MAX_APPEND) < to ? pos + BigInt(MAX_APPEND) : to;
    const at = Number(pos - wal.startLsn);
    c.append({ senderId: nodeId, beginLsn: pos, endLsn: end, restartLsn: wal.startLsn, commitLsn: commit, wal: wal.bytes.subarray(at, at + Number(end - pos)) });
  }
  for (; sent > 0; sent--) await c.response();
}
