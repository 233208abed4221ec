#!/usr/bin/env node
// Entry point of every command, services included (docker-compose runs `node bin/p2p.js superpeer|peer`).
// The services load as compiled; every other command runs the bundled command line (see entry.ts).
import { beforeLoading, entryFor } from '../dist/services/cli/entry.js';

beforeLoading(process.argv.slice(2));
const { main } = await import(entryFor(process.argv.slice(2)));

const code = await main(process.argv);
if (code !== undefined) {
  // process.exit() would drop what a pipe has not taken yet (anything past its 64 KiB buffer): end only
  // once stdout and stderr have flushed everything written before these empty writes.
  process.exitCode = code;
  let flushed = 0;
  const done = () => {
    if (++flushed === 2) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
