// The control file store (format 2 written atomically, format 1 read and
// upgraded, damage refused with the file named) and the data directory lock.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafeKeeperInfo } from '../../src/protocol/messages.js';
import type { SafeKeeperInfo } from '../../src/protocol/types.js';
import { CONTROL_FILE, ControlFile } from '../../src/storage/control.js';
import { DataDirLock, LOCK_FILE, LockHeldError, processAlive } from '../../src/storage/lock.js';
import { tempDir } from '../helpers/support.js';

function state(formatVersion = 2): SafeKeeperInfo {
  return {
    magic: 0xcafeceef,
    formatVersion,
    epoch: 3n,
    server: {
      protocolVersion: 1,
      pgVersion: 150004,
      nodeId: { term: 5n, uuid: Uint8Array.from({ length: 16 }, (_, i) => i) },
      systemId: 7711737127714501519n,
      timelineId: new Uint8Array(16).fill(0xab),
      walEnd: 0x15007c8n,
      timeline: 1,
      walSegSize: 16 << 20,
      tenantId: new Uint8Array(16).fill(0xcd),
    },
    commitLsn: 0x1000000n,
    flushLsn: 0x15007c8n,
    restartLsn: 0x1000000n,
  };
}

t.test('persist writes format 3 (140 bytes) and leaves no temp file; load reads it back', async (t) => {
  const dir = tempDir(t, 'wk-ctl-');
  const cf = new ControlFile(dir);
  t.equal(cf.load(), null, 'no file: a new timeline');
  cf.persist(state());
  t.same(readdirSync(dir), [CONTROL_FILE]);
  const bytes = readFileSync(join(dir, CONTROL_FILE));
  t.equal(bytes.length, 140);
  t.equal(bytes.readUInt32LE(4), 3);
  const back = cf.load()!;
  t.equal(back.epoch, 3n);
  t.equal(back.flushLsn, 0x15007c8n);
  t.equal(back.server.systemId, 7711737127714501519n);
  t.equal(cf.loadedFormat, 3);
  t.equal(cf.backupLsn, 0n);
  cf.persist(back, 0x3000000n);
  const again = new ControlFile(dir);
  again.load();
  t.equal(again.backupLsn, 0x3000000n, 'backup_lsn persisted');
  again.persist(back);
  const third = new ControlFile(dir);
  third.load();
  t.equal(third.backupLsn, 0x3000000n, 'persisting the state keeps backup_lsn');
});

t.test('a format 1 file is read and upgraded to format 3 on the next persist', async (t) => {
  const dir = tempDir(t, 'wk-ctl-');
  writeFileSync(join(dir, CONTROL_FILE), encodeSafeKeeperInfo(state(1), 1));
  const cf = new ControlFile(dir);
  const s = cf.load()!;
  t.equal(cf.loadedFormat, 1);
  t.equal(s.server.nodeId.term, 5n);
  cf.persist(s);
  const bytes = readFileSync(join(dir, CONTROL_FILE));
  t.equal(bytes.length, 140);
  t.equal(bytes.readUInt32LE(4), 3);
  t.equal(new ControlFile(dir).load()!.server.nodeId.term, 5n);
});

t.test('damaged control files are refused with the file named', async (t) => {
  const dir = tempDir(t, 'wk-ctl-');
  const cf = new ControlFile(dir);
  cf.persist(state());
  const good = readFileSync(join(dir, CONTROL_FILE));
  const flipped = Buffer.from(good);
  flipped[50] ^= 1;
  const cases: Array<[string, Buffer, RegExp]> = [
    ['bad checksum', flipped, /CRC/],
    ['bad magic', Buffer.concat([Buffer.from('00000000', 'hex'), good.subarray(4)]), /magic/],
    ['unknown version', (() => { const b = Buffer.from(good); b.writeUInt32LE(9, 4); return b; })(), /format_version/],
    ['truncated', good.subarray(0, 100), /size/],
  ];
  for (const [what, bytes, re] of cases) {
    writeFileSync(join(dir, CONTROL_FILE), bytes);
    const err = t.throws(() => cf.load(), what) as unknown as Error;
    t.match(err.message, re, what);
    t.match(err.message, join(dir, CONTROL_FILE), `${what}: names the file`);
  }
});

t.test('data directory lock: one holder, refusal names the pid, stale locks are taken over', async (t) => {
  const dir = tempDir(t, 'wk-ctl-');
  const lock = DataDirLock.acquire(dir);
  t.equal(readFileSync(join(dir, LOCK_FILE), 'utf8').trim(), String(process.pid));
  const err = t.throws(() => DataDirLock.acquire(dir)) as unknown as LockHeldError;
  t.ok(err instanceof LockHeldError);
  t.equal(err.holderPid, process.pid);
  t.match(err.message, `pid ${process.pid}`);
  lock.release();
  t.notOk(existsSync(join(dir, LOCK_FILE)), 'released');

  // A dead process's pid: the lock is stale and taken over.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  t.notOk(processAlive(Number(dead)));
  writeFileSync(join(dir, LOCK_FILE), `${dead}\n`);
  const again = DataDirLock.acquire(dir);
  t.equal(again.tookOverFrom, Number(dead));
  t.equal(readFileSync(join(dir, LOCK_FILE), 'utf8').trim(), String(process.pid));
  again.release();

  // Garbage in the file counts as stale too.
  writeFileSync(join(dir, LOCK_FILE), 'not a pid');
  DataDirLock.acquire(dir).release();
  t.pass('garbage lock file taken over');
});

t.test('a lock in a missing directory fails with the fs error', async (t) => {
  t.throws(() => DataDirLock.acquire('/nonexistent/wk-dir'), { code: 'ENOENT' });
});
