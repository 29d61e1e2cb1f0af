// PUT_TIMELINE_HISTORY on a running daemon: stored durably under the
// timeline's directory (created when new), the same content again is a
// success, different content ERROR 55000, bad input ERROR 22023/42601; the
// connection stays usable after each error.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePutHistoryArgs } from '../../src/push/put-history.js';
import { errorFields, query, RawClient } from '../pq/raw-client.js';
import { startDaemon, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';

const HISTORY = "1\t0/3000028\tno recovery target specified\n";
const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

t.test('the literal form: quotes doubled, tabs and newlines as they are', async (t) => {
  t.same(parsePutHistoryArgs(`2 ${literal("1\t0/1\tit's\n")}`), { tli: 2, content: "1\t0/1\tit's\n" });
  t.throws(() => parsePutHistoryArgs('2'), { code: '42601' });
  t.throws(() => parsePutHistoryArgs("x '1\t0/1'"), { code: '42601' });
  t.throws(() => parsePutHistoryArgs("2 'unterminated"), { code: '42601' });
});

t.test('stored once, identical again is fine, different or invalid is refused', async (t) => {
  const dataDir = tempDir(t);
  const d = await startDaemon(t, { dataDir, noSync: false });
  const c = await RawClient.connect(d.pgPort);
  t.teardown(() => c.destroy());
  await c.startup({ user: 'proposer', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` });

  async function run(sql: string): Promise<{ ok: boolean; code?: string; message?: string }> {
    c.write(query(sql));
    const ms = await c.readUntil('Z');
    const err = ms.find((m) => m.tag === 'E');
    if (!err) {
      t.ok(ms.some((m) => m.tag === 'C' && m.body.toString().startsWith('PUT_TIMELINE_HISTORY')), 'CommandComplete PUT_TIMELINE_HISTORY');
      return { ok: true };
    }
    const f = errorFields(err.body);
    return { ok: false, code: f.C, message: f.M };
  }

  const file = join(dataDir, TENANT, TIMELINE, '00000002.history');
  t.same(await run(`PUT_TIMELINE_HISTORY 2 ${literal(HISTORY)}`), { ok: true });
  t.equal(readFileSync(file, 'utf8'), HISTORY, 'stored under the timeline directory, byte for byte');
  t.same(await run(`PUT_TIMELINE_HISTORY 2 ${literal(HISTORY)};`), { ok: true }, 'identical: success');
  t.same(await run(`PUT_TIMELINE_HISTORY 2 ${literal(HISTORY.replace('3000028', '3000030'))}`), {
    ok: false,
    code: '55000',
    message: 'timeline history of timeline 2 differs from the one stored',
  });
  t.equal(readFileSync(file, 'utf8'), HISTORY, 'the stored file is unchanged');

  const invalid: Array<[string, RegExp]> = [
    [`PUT_TIMELINE_HISTORY 1 ${literal(HISTORY)}`, /invalid timeline 1/],
    [`PUT_TIMELINE_HISTORY 3 ${literal('garbage\n')}`, /syntax error in history file/],
    [`PUT_TIMELINE_HISTORY 3 ${literal('1\t0/10\tx\n3\t0/20\tx\n')}`, /lists timeline 3, which is not older/],
    [`PUT_TIMELINE_HISTORY 3 ${literal('')}`, /lists no parent timeline/],
  ];
  for (const [sql, message] of invalid) {
    const r = await run(sql);
    t.equal(r.code, '22023', sql.slice(0, 40));
    t.match(r.message, message);
  }
  t.notOk(existsSync(join(dataDir, TENANT, TIMELINE, '00000003.history')), 'nothing stored for the refused ones');
  t.equal((await run('PUT_TIMELINE_HISTORY 3')).code, '42601');

  // A connection that names no timeline cannot store one.
  const anon = await RawClient.connect(d.pgPort);
  t.teardown(() => anon.destroy());
  await anon.startup({ user: 'proposer' });
  anon.write(query(`PUT_TIMELINE_HISTORY 2 ${literal(HISTORY)}`));
  t.equal((await anon.expectError()).C, '22023');

  // A timeline directory holding only a history file loads after a restart, and the file is kept.
  await d.stop();
  const d2 = await startDaemon(t, { dataDir });
  const again = await RawClient.connect(d2.pgPort);
  t.teardown(() => again.destroy());
  await again.startup({ user: 'proposer', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` });
  again.write(query(`PUT_TIMELINE_HISTORY 2 ${literal(HISTORY.replace('3000028', '3000030'))}`));
  t.equal((await again.expectError()).C, '55000', 'the stored history survived the restart');
  t.equal(readFileSync(file, 'utf8'), HISTORY);
});
