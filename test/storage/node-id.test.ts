// The node id file (src/storage/node-id.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tempDir } from '../helpers/support.js';
import { newNodeId, NODE_ID_FILE, NodeIdFileError, readNodeId, writeNodeId } from '../../src/storage/node-id.js';

t.test('absent, written, read back', async (t) => {
  const dir = tempDir(t, 'wk-id-');
  t.equal(readNodeId(dir), null, 'none before the first write');
  writeNodeId(dir, 281474976710655);
  t.equal(readFileSync(join(dir, NODE_ID_FILE), 'utf8'), '281474976710655\n', 'decimal, one line');
  t.equal(readNodeId(dir), 281474976710655);
});

t.test('a file holding something else is refused', async (t) => {
  const dir = tempDir(t, 'wk-id-');
  writeFileSync(join(dir, NODE_ID_FILE), '-1\n');
  t.throws(() => readNodeId(dir), NodeIdFileError);
});

t.test('new ids: positive, at most 15 digits (what --id accepts), not all the same', async (t) => {
  const ids = new Set<number>();
  for (let i = 0; i < 100; i++) {
    const id = newNodeId();
    if (!(Number.isSafeInteger(id) && id > 0 && String(id).length <= 15)) t.fail(`out of range: ${id}`);
    ids.add(id);
  }
  t.ok(ids.size > 1);
});
