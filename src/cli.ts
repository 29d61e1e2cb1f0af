// The `walkeeper` command: dispatches to one module per sub-command.
// Every failure ends as one line on stderr and a non-zero exit code.
import { CommandError, UsageError } from './commands/errors.js';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  run: {
    summary: 'run the safekeeper daemon (PostgreSQL computes push WAL to it)',
    load: async () => (await import('./commands/run.js')).runCommand,
  },
  token: {
    summary: 'mint an auth token (EdDSA JWT) from an Ed25519 private key, or make a key pair',
    load: async () => (await import('./commands/token.js')).tokenCommand,
  },
  propose: {
    summary: 'quorum proposer for an unmodified PostgreSQL primary (synchronous standby)',
    load: async () => (await import('./commands/propose.js')).proposeCommand,
  },
  'sync-safekeepers': {
    summary: 'fence the running proposer, bring the safekeepers to one point (the VCL) and print it',
    load: async () => (await import('./commands/sync-safekeepers.js')).syncSafekeepersCommand,
  },
  promote: {
    summary: 'promote a hot standby once it has replayed all committed WAL (after sync-safekeepers)',
    load: async () => (await import('./commands/promote.js')).promoteCommand,
  },
  'restore-wal': {
    summary: "fetch a WAL segment or history file from the archive or safekeepers (PostgreSQL's restore_command)",
    load: async () => (await import('./commands/restore-wal.js')).restoreWalCommand,
  },
  'wal-end': {
    summary: 'find the end of valid WAL in a pg_wal, pg_receivewal or timeline directory',
    load: async () => (await import('./commands/wal-end.js')).walEndCommand,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(16)} ${c.summary}`);
  return `usage: walkeeper <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun "walkeeper <command> --help" for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    const { version } = await import('./version.js');
    process.stdout.write(`walkeeper ${version}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`walkeeper: unknown command "${name}" (try "walkeeper --help")\n`);
    return 2;
  }
  try {
    return await (await command.load())(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`walkeeper ${name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CommandError) {
      process.stderr.write(`walkeeper ${name}: ${err.message}\n`);
      return 1;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`walkeeper ${name}: ${message}\n`);
    return 1;
  }
}
