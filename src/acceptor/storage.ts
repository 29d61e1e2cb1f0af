// What the acceptor needs from durable storage. The daemon implements it
// over files (src/storage/), the simulation in memory with crash semantics.
import type { Lsn } from '../lsn.js';
import type { SafeKeeperInfo } from '../protocol/types.js';
import type { HistoryEntry } from '../wal/history.js';

export interface AcceptorStorage {
  /** The last durably persisted control state, or null for a new timeline. */
  loadControl(): SafeKeeperInfo | null;
  /** Persist durably (temp file, fsync, rename, fsync dir) before returning. */
  persistControl(state: SafeKeeperInfo): void;
  /**
   * Write WAL bytes at `lsn`. Not durable until the host's next WAL sync.
   * Throws on I/O errors (ENOSPC, EIO); nothing may be acknowledged then.
   */
  writeWal(lsn: Lsn, bytes: Uint8Array): void;
  /** Discard all WAL at and after `lsn`, durably, before returning. */
  truncateWal(lsn: Lsn): void;
  /**
   * Make every WAL byte written so far durable before returning (fdatasync
   * of the open segments). The acceptor calls it before persisting a vote
   * and before persisting an epoch switch: the control file must never
   * claim an epoch whose WAL a crash could still take away.
   */
  syncWal(): void;
  /** The stored history file of PostgreSQL timeline `tli`, parsed; null when none is stored. */
  timelineHistory(tli: number): readonly HistoryEntry[] | null;
  /**
   * The WAL moves to PostgreSQL timeline `tli`, which forked at `switchLsn`
   * (WAL at and past it is already discarded): the new timeline's file of
   * the segment holding `switchLsn` starts with a copy of the parent's bytes
   * before it. Durable before returning; done again (the same way) when a
   * crash came before the control file named `tli`.
   */
  beginTimeline(tli: number, switchLsn: Lsn): void;
}
