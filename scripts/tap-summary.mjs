// Echoes tap's output and appends a plain "N passed, M failed" line taken
// from tap's own closing count, for CI systems that do not read tap.
import { createInterface } from 'node:readline';

let summary = null;
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  process.stdout.write(line + '\n');
  const m = /^# \{ (total: .*) \}$/.exec(line.trim());
  if (m) summary = Object.fromEntries(m[1].split(', ').map((kv) => kv.split(': ')).map(([k, v]) => [k, Number(v)]));
});
lines.on('close', () => {
  if (!summary) {
    process.stdout.write('tap printed no summary\n0 passed, 1 failed\n');
    return;
  }
  const skipped = (summary.skip ?? 0) + (summary.todo ?? 0);
  process.stdout.write(`${summary.pass ?? 0} passed, ${summary.fail ?? 0} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
});
