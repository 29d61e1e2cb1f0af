#!/usr/bin/env node
// Entry point: runs the compiled CLI (build it with `npm run build`).
// Kept to syntax an old Node can parse: on a Node older than 24 it hands
// itself to the Node 24 that `npm ci` installs (the pinned `node` package).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const REQUIRED_MAJOR = 24;

if (Number(process.versions.node.split('.')[0]) < REQUIRED_MAJOR) {
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(`walkeeper: needs Node ${REQUIRED_MAJOR} or later, this is ${process.version}; run "npm ci" to install it\n`);
    process.exit(1);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : 1)));
} else {
  const cli = new URL('../dist/src/cli.js', import.meta.url);
  if (!existsSync(fileURLToPath(cli))) {
    process.stderr.write('walkeeper: not built yet; run "npm run build" first\n');
    process.exit(1);
  }
  // Short-lived commands (restore_command runs once per WAL segment) start
  // faster from V8's on-disk code cache; failing to set it up only costs speed.
  module.enableCompileCache?.();
  const args = process.argv.slice(2);
  if (args[0] === 'restore-wal') {
    // restore_command runs once per segment: load only the restore module,
    // not the command table.
    const { restoreWalCommand } = await import(new URL('../dist/src/commands/restore-wal.js', import.meta.url).href);
    process.exitCode = await restoreWalCommand(args.slice(1));
  } else {
    const { main } = await import(cli.href);
    process.exitCode = await main(args);
  }
}

function signalNumber(name) {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[name];
}
