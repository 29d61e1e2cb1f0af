// The sub-commands' argv parser. One declaration per command, so that every
// command takes the same forms and fails with the same usage errors:
//   --name VALUE, --name=VALUE, and -XVALUE for a one-letter value option;
//   a value is always the next argument, even one that starts with "-";
//   -h, --help: stop and ask for the help text (errors in the arguments
//   before it are still reported; see helpLast for the other way);
//   "-" alone and anything not starting with "-" is a positional argument.
// Values are checked as they are met, so the first bad argument is the one
// reported.
//
// Node's util.parseArgs splits the arguments into tokens. It runs non-strict
// because its strict mode refuses a value starting with "-", stops at its own
// first complaint before our value checks run (so not always at the first bad
// argument) and words its errors differently; the checks it would make are
// made below, token by token, with our messages.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { UsageError } from './errors.js';

/** An option that takes a value. */
export interface ValueOption<T = unknown> {
  /** As typed, e.g. ['--data-dir', '-D']; the first names the option when it is missing. */
  names: readonly string[];
  value: true;
  /** Checks and converts the text; `name` is the name as typed, for messages. */
  parse?: (text: string, name: string) => T;
  required?: boolean;
}

/** An option that takes no value: false unless given. */
export interface FlagOption {
  names: readonly string[];
  value?: false;
}

export type OptionSpec = ValueOption | FlagOption;

export interface CommandSpec<S extends Record<string, OptionSpec>> {
  /** The sub-command's name, for the hint in messages. */
  command: string;
  options: S;
  /** Names of the positional arguments, all required (e.g. ['DIR']); none by default. */
  positionals?: readonly string[];
  /** An option given twice is an error; by default the last one wins. */
  once?: boolean;
  /** Parse on after -h/--help and answer it only if the options are good
   * (wal-end has always done so); by default help ends the parse. */
  helpLast?: boolean;
}

type ValueOf<O> = O extends { value: true }
  ? (O extends { parse: (...args: never[]) => infer T } ? T : string) | (O extends { required: true } ? never : undefined)
  : boolean;

export interface ParsedArgs<S> {
  options: { [K in keyof S]: ValueOf<S[K]> };
  positionals: string[];
}

const HELP = 'help';

/**
 * Our declarations as parseArgs options: one per long name (aliases map back
 * to the same key), each one-letter name attached as the `short` of a long
 * name of its option.
 */
function toParseArgsOptions(options: Record<string, OptionSpec>): { config: ParseArgsOptionsConfig; keyOf: Map<string, string> } {
  const config: ParseArgsOptionsConfig = { [HELP]: { type: 'boolean', short: 'h' } };
  const keyOf = new Map<string, string>();
  for (const [key, opt] of Object.entries(options)) {
    const type = opt.value ? 'string' : 'boolean';
    const longs = opt.names.filter((n) => n.startsWith('--')).map((n) => n.slice(2));
    for (const long of longs) {
      config[long] = { type };
      keyOf.set(long, key);
    }
    for (const short of opt.names.filter((n) => !n.startsWith('--'))) {
      const long = longs.find((l) => config[l].short === undefined);
      if (short.length !== 2 || long === undefined) throw new Error(`option ${key}: "${short}" needs a long name of its own to attach to`);
      config[long].short = short.slice(1);
    }
  }
  return { config, keyOf };
}

/** The parsed arguments, or 'help' for -h/--help. Bad usage throws UsageError (exit 2). */
export function parseCommandLine<const S extends Record<string, OptionSpec>>(argv: readonly string[], spec: CommandSpec<S>): ParsedArgs<S> | 'help' {
  const hint = `(try "walkeeper ${spec.command} --help")`;
  const { config, keyOf } = toParseArgsOptions(spec.options);
  const { tokens } = parseArgs({ args: [...argv], options: config, strict: false, allowPositionals: true, tokens: true });
  const values: Record<string, unknown> = {};
  for (const [key, opt] of Object.entries(spec.options)) values[key] = opt.value ? undefined : false;
  const wanted = spec.positionals ?? [];
  const positionals: string[] = [];
  const seen = new Set<string>();
  let help = false;
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      if (positionals.length > wanted.length && !spec.helpLast) break;
      continue;
    }
    const arg = argv[token.index];
    // "--" ends options for parseArgs; ours has no such form. A bundle of
    // one-letter flags (-vx) is split by parseArgs; ours takes them whole.
    if (token.kind === 'option-terminator' || (arg !== token.rawName && !token.inlineValue)) {
      throw new UsageError(`unknown option "${arg}" ${hint}`);
    }
    const name = token.rawName;
    if (token.name === HELP) {
      if (!spec.helpLast) return 'help';
      help = true;
      continue;
    }
    const key = keyOf.get(token.name);
    if (key === undefined) throw new UsageError(`unknown option "${arg}" ${hint}`);
    const opt = spec.options[key];
    if (opt.value && token.value === undefined) throw new UsageError(`${name} needs a value`);
    if (!opt.value && token.inlineValue) throw new UsageError(`${name} takes no value`);
    if (spec.once && seen.has(key)) throw new UsageError(`${name} given twice`);
    seen.add(key);
    values[key] = token.value === undefined ? true : opt.value && opt.parse ? opt.parse(token.value, name) : token.value;
  }
  if (help) return 'help';
  if (positionals.length > wanted.length) throw new UsageError(`unexpected argument "${positionals[wanted.length]}" ${hint}`);
  for (const [key, opt] of Object.entries(spec.options)) {
    if (opt.value && opt.required && !seen.has(key)) throw new UsageError(`${opt.names[0]} is required ${hint}`);
  }
  if (positionals.length < wanted.length) throw new UsageError(`missing ${wanted[positionals.length]} ${hint}`);
  return { options: values as ParsedArgs<S>['options'], positionals };
}

/** Prints a command's help text; the exit code for it. */
export function showHelp(text: string): number {
  process.stdout.write(text);
  return 0;
}
