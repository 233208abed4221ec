import { holdYoungGeneration } from '../young-generation.js';

/**
 * Which module `bin/p2p.js` runs. The services (`p2p superpeer`, `p2p peer`) load as compiled, from
 * `dist/services/`: run through the bundled command line they would hold a second copy of every library
 * they share with it (10-20 MB more in each process). Every other command runs the command line bundled
 * into one file (`dist/cli/main.js`, scripts/bundle-cli.ts), which starts about 0.1 s sooner. Nothing
 * but V8's settings as a dependency: it is loaded before either.
 */
const SERVICES = new Set(['superpeer', 'peer']);

/** The program's options that take a value (see `buildProgram`): the word after them is not a command. */
const OPTIONS_WITH_VALUE = new Set(['--env-file']);

/** The command named by `args` (the arguments after `node p2p.js`), as commander reads it. */
export function commandOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return args[i + 1];
    if (OPTIONS_WITH_VALUE.has(arg)) {
      i++;
      continue;
    }
    if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

/** The module to import for `args`, relative to `bin/`. */
export function entryFor(args: readonly string[]): string {
  const command = commandOf(args);
  return command !== undefined && SERVICES.has(command)
    ? '../dist/services/cli/main.js'
    : '../dist/cli/main.js';
}

/**
 * What `bin/p2p.js` sets before it loads the command's modules: for `p2p peer`, V8's young generation held
 * at its initial size, which loading the modules would otherwise grow to 16 MB (see young-generation.ts).
 */
export function beforeLoading(args: readonly string[]): void {
  if (commandOf(args) === 'peer') holdYoungGeneration();
}
