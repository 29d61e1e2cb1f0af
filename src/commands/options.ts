// The sub-commands' argv parser. One declaration per command, so that every
// command takes the same forms and fails with the same usage errors:
//   --name VALUE, --name=VALUE, and -XVALUE for a one-letter value option;
//   a value is always the next argument, even one that starts with "-";
//   -h, --help: stop and ask for the help text (errors in the arguments
//   before it are still reported; see helpLast for the other way);
//   "-" alone and anything not starting with "-" is a positional argument.
// Values are checked as they are met, so the first bad argument is the one
// reported.
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

/** The parsed arguments, or 'help' for -h/--help. Bad usage throws UsageError (exit 2). */
export function parseOptions<const S extends Record<string, OptionSpec>>(argv: readonly string[], spec: CommandSpec<S>): ParsedArgs<S> | 'help' {
  const hint = `(try "walkeeper ${spec.command} --help")`;
  const byName = new Map<string, [string, OptionSpec]>();
  const values: Record<string, unknown> = {};
  for (const [key, opt] of Object.entries(spec.options)) {
    for (const name of opt.names) byName.set(name, [key, opt]);
    values[key] = opt.value ? undefined : false;
  }
  const wanted = spec.positionals ?? [];
  const positionals: string[] = [];
  const seen = new Set<string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      if (positionals.length > wanted.length && !spec.helpLast) break;
      continue;
    }
    let name = arg;
    let inline: string | undefined;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    if (eq !== -1) {
      name = arg.slice(0, eq);
      inline = arg.slice(eq + 1);
    } else if (!arg.startsWith('--') && arg.length > 2 && byName.get(arg.slice(0, 2))?.[1].value) {
      // -DVALUE
      name = arg.slice(0, 2);
      inline = arg.slice(2);
    }
    if (name === '-h' || name === '--help') {
      if (!spec.helpLast) return 'help';
      help = true;
      continue;
    }
    const found = byName.get(name);
    if (!found) throw new UsageError(`unknown option "${arg}" ${hint}`);
    const [key, opt] = found;
    const text = opt.value ? (inline ?? argv[++i]) : undefined;
    if (opt.value && text === undefined) throw new UsageError(`${name} needs a value`);
    if (!opt.value && inline !== undefined) throw new UsageError(`${name} takes no value`);
    if (spec.once && seen.has(key)) throw new UsageError(`${name} given twice`);
    seen.add(key);
    values[key] = text === undefined ? true : opt.value && opt.parse ? opt.parse(text, name) : text;
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
