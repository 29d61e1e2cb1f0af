// Resource manager names as pg_waldump (PostgreSQL 15) prints them.
const BUILTIN = [
  'XLOG',
  'Transaction',
  'Storage',
  'CLOG',
  'Database',
  'Tablespace',
  'MultiXact',
  'RelMap',
  'Standby',
  'Heap2',
  'Heap',
  'Btree',
  'Hash',
  'Gin',
  'Gist',
  'Sequence',
  'SPGist',
  'BRIN',
  'CommitTs',
  'ReplicationOrigin',
  'Generic',
  'LogicalMessage',
];

/** The rmgr's name; custom ids (128–255) print as pg_waldump does for unknown custom rmgrs. */
export function rmgrName(rmid: number): string {
  if (rmid < BUILTIN.length) return BUILTIN[rmid];
  if (rmid >= 128 && rmid <= 255) return `custom${String(rmid).padStart(3, '0')}`;
  return `invalid${rmid}`;
}

/** XLOG_SWITCH: rmgr XLOG with info 0x40 in the rmgr-owned high bits. */
export function isSwitchRecord(rmid: number, info: number): boolean {
  return rmid === 0 && (info & 0xf0) === 0x40;
}
