// The sub-commands' argv parser (src/commands/options.ts), and through the
// built CLI that its usage errors end as one stderr line and exit 2.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { UsageError } from '../../src/commands/errors.js';
import { parseCommandLine, type CommandSpec, type OptionSpec } from '../../src/commands/options.js';

const BIN = fileURLToPath(new URL('../../bin/walkeeper.js', import.meta.url));

const spec = {
  command: 'demo',
  options: {
    dir: { names: ['--data-dir', '-D', '--datadir'], value: true },
    port: {
      names: ['--port'],
      value: true,
      parse: (text: string, name: string) => {
        if (!/^\d+$/.test(text)) throw new UsageError(`${name}: not a number`);
        return Number(text);
      },
    },
    verbose: { names: ['--verbose', '-v'] },
  },
} as const;

const parse = (argv: string[]) => parseCommandLine(argv, spec);

/** The message of the UsageError that parsing argv throws. */
function usageError<S extends Record<string, OptionSpec>>(argv: string[], s: CommandSpec<S>): string {
  try {
    parseCommandLine(argv, s);
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  throw new Error(`no usage error for ${JSON.stringify(argv)}`);
}

t.test('values, flags and their defaults', async (t) => {
  t.same(parse([]), { options: { dir: undefined, port: undefined, verbose: false }, positionals: [] });
  const r = parse(['--data-dir', 'a', '--port', '80', '--verbose']);
  t.not(r, 'help');
  if (r === 'help') return;
  t.equal(r.options.dir, 'a');
  t.equal(r.options.port, 80, 'parse converts the value');
  t.equal(r.options.verbose, true);
});

t.test('aliases, the = form and -XVALUE', async (t) => {
  for (const argv of [['-D', 'a'], ['--datadir', 'a'], ['--data-dir=a'], ['--datadir=a'], ['-Da']]) {
    const r = parse(argv);
    t.equal(r !== 'help' && r.options.dir, 'a', argv.join(' '));
  }
  const eq = parse(['--data-dir=x=y', '--port=8']);
  t.ok(eq !== 'help' && eq.options.dir === 'x=y' && eq.options.port === 8, 'split at the first =');
  const empty = parse(['--data-dir=']);
  t.equal(empty !== 'help' && empty.options.dir, '', '--name= gives an empty value');
  const dashed = parse(['--data-dir', '-v']);
  t.ok(dashed !== 'help' && dashed.options.dir === '-v' && !dashed.options.verbose, 'a value may start with "-"');
  t.equal(usageError(['-vx'], spec), 'unknown option "-vx" (try "walkeeper demo --help")', 'a flag takes nothing attached');
  t.equal(usageError(['-v=1'], spec), 'unknown option "-v=1" (try "walkeeper demo --help")', 'no = form for short names');
});

t.test('the last of a repeated option wins, or once makes it an error', async (t) => {
  const r = parse(['-D', 'a', '--data-dir', 'b']);
  t.equal(r !== 'help' && r.options.dir, 'b');
  t.equal(usageError(['-D', 'a', '--datadir', 'b'], { ...spec, once: true }), '--datadir given twice');
});

t.test('usage errors', async (t) => {
  const cases: [string[], string][] = [
    [['--data-dir'], '--data-dir needs a value'],
    [['-v', '-D'], '-D needs a value'],
    [['--verbose=yes'], '--verbose takes no value'],
    [['--bogus'], 'unknown option "--bogus" (try "walkeeper demo --help")'],
    [['--bogus=1'], 'unknown option "--bogus=1" (try "walkeeper demo --help")'],
    [['--'], 'unknown option "--" (try "walkeeper demo --help")'],
    [['extra'], 'unexpected argument "extra" (try "walkeeper demo --help")'],
    [['-'], 'unexpected argument "-" (try "walkeeper demo --help")'],
    [['--port', 'x'], '--port: not a number'],
    [['--port', 'x', '--bogus'], '--port: not a number'],
    [['--bogus', '--port', 'x'], 'unknown option "--bogus" (try "walkeeper demo --help")'],
    [['extra', '--bogus'], 'unexpected argument "extra" (try "walkeeper demo --help")'],
  ];
  for (const [argv, message] of cases) t.equal(usageError(argv, spec), message, argv.join(' '));
});

t.test('required options', async (t) => {
  const req = {
    command: 'demo',
    options: { a: { names: ['--a'], value: true, required: true }, b: { names: ['--b', '-b'], value: true, required: true } },
  } as const;
  t.equal(usageError(['--b', '1'], req), '--a is required (try "walkeeper demo --help")');
  t.equal(usageError(['--a', '1'], req), '--b is required (try "walkeeper demo --help")', 'named by its first name');
  const r = parseCommandLine(['-b', '2', '--a', '1'], req);
  t.ok(r !== 'help' && r.options.a === '1' && r.options.b === '2');
  t.equal(parseCommandLine(['--help'], req), 'help', 'help needs no required option');
});

t.test('positional arguments', async (t) => {
  const pos = { command: 'demo', positionals: ['SRC', 'DST'], options: { json: { names: ['--json'] } } } as const;
  const r = parseCommandLine(['a', '--json', '-'], pos);
  t.same(r, { options: { json: true }, positionals: ['a', '-'] });
  t.equal(usageError([], pos), 'missing SRC (try "walkeeper demo --help")');
  t.equal(usageError(['a'], pos), 'missing DST (try "walkeeper demo --help")');
  t.equal(usageError(['a', 'b', 'c'], pos), 'unexpected argument "c" (try "walkeeper demo --help")');
});

t.test('help', async (t) => {
  for (const argv of [['-h'], ['--help'], ['--help=x'], ['-v', '--help', '--bogus'], ['--help', 'extra']]) t.equal(parse(argv), 'help', argv.join(' '));
  t.equal(usageError(['--bogus', '--help'], spec), 'unknown option "--bogus" (try "walkeeper demo --help")', 'an error before --help wins');
  const last = { ...spec, positionals: ['DIR'], helpLast: true };
  t.equal(parseCommandLine(['--help'], last), 'help', 'helpLast: no DIR needed');
  t.equal(parseCommandLine(['a', 'b', '--help'], last), 'help', 'helpLast: the DIR count is not checked');
  t.equal(usageError(['--help', '--bogus'], last), 'unknown option "--bogus" (try "walkeeper demo --help")', 'helpLast: options after it are checked');
  t.equal(usageError(['a', 'b'], last), 'unexpected argument "b" (try "walkeeper demo --help")');
});

t.test('the CLI: usage errors are one stderr line and exit 2', async (t) => {
  const cases: [string[], string][] = [
    [['run', 'extra'], 'walkeeper run: unexpected argument "extra" (try "walkeeper run --help")'],
    [['run', '--no-sync=1'], 'walkeeper run: --no-sync takes no value'],
    [['token', '--bogus=1'], 'walkeeper token: unknown option "--bogus=1" (try "walkeeper token --help")'],
    [['token', '--expires-in'], 'walkeeper token: --expires-in needs a value'],
    [['propose', '--slot', 'a', '--slot', 'b'], 'walkeeper propose: --slot given twice'],
    [['wal-end', '--help', '--timeline'], 'walkeeper wal-end: --timeline needs a value'],
    [['wal-end'], 'walkeeper wal-end: missing DIR (try "walkeeper wal-end --help")'],
  ];
  for (const [argv, line] of cases) {
    const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8' });
    t.equal(r.status, 2, argv.join(' '));
    t.equal(r.stdout, '', `${argv.join(' ')}: nothing on stdout`);
    t.equal(r.stderr, `${line}\n`, `${argv.join(' ')}: one line`);
  }
  const help = spawnSync(process.execPath, [BIN, 'token', '--expires-in', '5m', '-h'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /^usage: walkeeper token/);
});
