// DELETE of a timeline: refuse while a proposer is attached (unless forced),
// take the timeline out of the registry so nothing re-creates it meanwhile,
// disconnect its WAL push sessions and readers, close its files, then move
// the directory away and delete it (src/storage/remove.ts).
import { join } from 'node:path';
import { removeDirDurably, removeEmptyDirDurably, type RemovedFile } from '../storage/remove.js';
import { keyString, type TimelineKey } from '../timeline/ids.js';
import { HttpError, notFound } from './errors.js';
import type { NodeAdmin } from './node.js';

export interface DeleteResult {
  tenant_id: string;
  timeline_id: string;
  dir_existed: boolean;
  removed: { files: RemovedFile[]; bytes: number };
  disconnected: { proposers: number; connections: number };
}

export async function deleteTimeline(node: NodeAdmin, key: TimelineKey, force: boolean): Promise<DeleteResult> {
  const reg = node.registry;
  const name = keyString(key);
  const tl = reg.get(key);
  if (!tl && !reg.broken.has(name)) throw notFound(`timeline ${name} not found on this safekeeper`);
  if (tl && tl.pushSessions.size > 0 && !force) {
    const who = [...tl.pushSessions].map((s) => s.address).join(', ');
    throw new HttpError(409, `timeline ${name} has a connected proposer (${who}); add ?force=true to disconnect it and delete anyway`);
  }
  const detached = reg.detach(key);
  try {
    const message = `terminating connection: timeline ${name} is being deleted`;
    let proposers = 0;
    if (tl) {
      for (const s of [...tl.pushSessions]) {
        s.disconnect(message);
        proposers++;
      }
      // Nothing may write (and so re-create the directory) from here on.
      tl.failure ??= new Error(`timeline ${name} was deleted`);
    }
    const connections = await node.closeConnections(key, message);
    if (tl) await tl.close();
    let removed;
    try {
      removed = removeDirDurably(join(reg.root, key.tenantId, key.timelineId), { noSync: node.noSync });
    } catch (err) {
      // Keep it listed (as broken) so that the deletion can be retried.
      reg.broken.set(name, { key, error: new Error(`deletion failed: ${(err as Error).message}`) });
      throw err;
    }
    // The tenant directory goes too once its last timeline is gone.
    try {
      removeEmptyDirDurably(join(reg.root, key.tenantId), { noSync: node.noSync });
    } catch {
      /* other timelines remain (ENOTEMPTY), or it was never there */
    }
    return {
      tenant_id: key.tenantId,
      timeline_id: key.timelineId,
      dir_existed: removed.existed,
      removed: { files: removed.files, bytes: removed.bytes },
      disconnected: { proposers, connections },
    };
  } finally {
    detached.done();
  }
}
