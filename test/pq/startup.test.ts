// Start-up packets and the `options` syntax, from bytes real clients send.
import t from 'tap';
import { PgError } from '../../src/pq/errors.js';
import { decodeStartupPacket, parseStartupOptions, splitOptions, StartupReader } from '../../src/pq/startup.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string): string => Buffer.from(s, 'latin1').toString('hex');

function body(packet: Buffer): Buffer {
  return packet.subarray(4);
}

t.test('the StartupMessage pg_receivewal sends (92 bytes)', async (t) => {
  const packet = hex('0000005c 00030000' + ascii('user\0postgres\0database\0replication\0replication\0true\0application_name\0pg_receivewal\0') + '00');
  t.equal(packet.length, 92);
  const p = decodeStartupPacket(body(packet));
  if (p.kind !== 'startup') throw new Error('not startup');
  t.equal(p.protocol, 0x30000);
  t.same([...p.params], [
    ['user', 'postgres'],
    ['database', 'replication'],
    ['replication', 'true'],
    ['application_name', 'pg_receivewal'],
  ]);
});

t.test('SSLRequest, GSSENCRequest and CancelRequest', async (t) => {
  t.same(decodeStartupPacket(body(hex('00000008 04d2162f'))), { kind: 'ssl' });
  t.same(decodeStartupPacket(body(hex('00000008 04d21630'))), { kind: 'gssenc' });
  t.same(decodeStartupPacket(body(hex('00000010 04d2162e 00000007 0000002a'))), { kind: 'cancel', pid: 7, secret: 42 });
  t.throws(() => decodeStartupPacket(body(hex('0000000c 04d2162f 00000000'))), PgError);
  t.throws(() => decodeStartupPacket(body(hex('0000000c 04d2162e 00000007'))), PgError);
});

t.test('malformed start-up packets are protocol errors', async (t) => {
  const cases: Array<[string, string]> = [
    ['protocol 2.0', '00000009 00020000 00'],
    ['no terminator', '0000000f 00030000' + ascii('user\0ab')],
    ['name without value', '00000010 00030000' + ascii('user\0') + '00'],
    ['bytes after the terminator', '00000011 00030000' + ascii('a\0b\0') + '00 41'],
  ];
  for (const [what, bytes] of cases) {
    const err = t.throws(() => decodeStartupPacket(body(hex(bytes))), what) as unknown as PgError;
    t.ok(err instanceof PgError && err.fatal, `${what}: FATAL`);
    t.match(err.code, /^(08P01|0A000)$/, `${what}: ${err.message}`);
  }
});

t.test('options: several -c key=value, PostgreSQL word splitting and escapes', async (t) => {
  const o = parseStartupOptions('-c ztenantid=ab -c ztimelineid=cd   -capplication_name=x --work-mem=4MB');
  t.same([...o], [
    ['ztenantid', 'ab'],
    ['ztimelineid', 'cd'],
    ['application_name', 'x'],
    ['work_mem', '4MB'],
  ]);
  t.same(splitOptions('a\\ b  c\\\\d'), ['a b', 'c\\d']);
  t.same([...parseStartupOptions('-c search_path=a\\ b')], [['search_path', 'a b']]);
  t.same([...parseStartupOptions('')], []);
  for (const bad of ['-c', '-c novalue', 'plain', '-x y', '-c =v']) {
    t.throws(() => parseStartupOptions(bad), PgError, `refuses "${bad}"`);
  }
});

t.test("options: the 2021 compute's form, one -c and then bare name=value words", async (t) => {
  const tl = '0123456789abcdef0123456789abcdef';
  const tenant = 'fedcba9876543210fedcba9876543210';
  t.same([...parseStartupOptions(`-c ztimelineid=${tl} ztenantid=${tenant}`)], [
    ['ztimelineid', tl],
    ['ztenantid', tenant],
  ]);
  t.same([...parseStartupOptions(`ztenantid=${tenant} ztimelineid=${tl}`)], [
    ['ztenantid', tenant],
    ['ztimelineid', tl],
  ], 'bare pairs without any -c');
  t.same([...parseStartupOptions('-c a=b c=d --e-f=g -ch=i j=')], [
    ['a', 'b'],
    ['c', 'd'],
    ['e_f', 'g'],
    ['h', 'i'],
    ['j', ''],
  ], 'mixed with the strict forms');
  t.same([...parseStartupOptions('a=x=y')], [['a', 'x=y']], 'the value runs to the end of the word');
  for (const bad of ['=v', '-x=1', '-c a=b plain', '-c a=b -c']) {
    const err = t.throws(() => parseStartupOptions(bad), PgError, `refuses "${bad}"`) as unknown as PgError;
    t.equal(err.code, '42601');
    t.ok(err.fatal);
  }
});

t.test('StartupReader cuts packets from arbitrary chunks', async (t) => {
  const ssl = hex('00000008 04d2162f');
  const start = hex('0000000d 00030000' + ascii('a\0b\0') + '00');
  const after = hex('51 00000005 00');
  const all = Buffer.concat([ssl, start, after]);
  for (let cut = 0; cut <= all.length; cut++) {
    const r = new StartupReader();
    r.push(all.subarray(0, cut));
    // The reader only knows start-up packets: after two, the tagged 'Q' is left for the framer.
    const got: Buffer[] = [];
    const take = () => {
      while (got.length < 2) {
        const p = r.next();
        if (!p) return;
        got.push(p);
      }
    };
    take();
    r.push(all.subarray(cut));
    take();
    t.same(got, [body(ssl), body(start)], `cut at ${cut}`);
    t.same(r.takeRest(), after);
  }
  const r = new StartupReader();
  r.push(Buffer.concat([start, after]));
  t.same(r.next(), body(start));
  t.same(r.takeRest(), after);
  const bad = new StartupReader();
  bad.push(hex('00000004 0000'));
  t.throws(() => bad.next(), PgError);
  const huge = new StartupReader();
  huge.push(hex('00100000'));
  t.throws(() => huge.next(), PgError, 'over MAX_STARTUP_PACKET');
});
