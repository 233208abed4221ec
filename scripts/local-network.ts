/**
 * The same network docker-compose runs, as local processes against a local RabbitMQ: one superpeer and
 * N peers (default 3), each sharing `.network/peerN` seeded with demo files. Ctrl-C stops them all (the
 * peers announce their leave) and exits 0. Usage: npm run network [-- --peers 5] [-- --dir .network]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin/p2p.js');
const { values } = parseArgs({
  options: { peers: { type: 'string', default: '3' }, dir: { type: 'string', default: '.network' } },
});
const peerCount = Number(values.peers);
if (!Number.isInteger(peerCount) || peerCount < 1 || peerCount > 50) {
  process.stderr.write('--peers: a whole number from 1 to 50\n');
  process.exit(2);
}

const children: ChildProcess[] = [];
/** Children that logged "shutting down": they have a signal already, and a second one would cut their leave. */
const leaving = new Set<ChildProcess>();

function start(label: string, args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: { LOG_FORMAT: 'pretty', ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `${label.padEnd(10)}| `;
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream! }).on('line', (line) => {
      if (line.includes('shutting down')) leaving.add(child);
      process.stdout.write(`${prefix}${line}\n`);
    });
  }
  child.on('exit', (code, signal) => {
    process.stdout.write(`${prefix}exited (${signal ?? code})\n`);
    if (!stopping) stopAll(1);
  });
  children.push(child);
  return child;
}

let stopping = false;
/**
 * Stops every service once and exits 0 when each left cleanly. A terminal's Ctrl-C sends SIGINT to the
 * whole foreground process group, so the services got it too and are leaving: signalling them again would
 * be a second signal, which makes a service exit at once before its leave is published. So on SIGINT only
 * the services that have not said "shutting down" within a moment (a SIGINT sent to this script alone) get
 * a SIGTERM; on SIGTERM, or when a service died, every running service gets one.
 */
function stopAll(code: number, signalledGroup = false): void {
  if (stopping) return;
  stopping = true;
  let exitCode = code;
  const running = children.filter((child) => child.exitCode === null && child.signalCode === null);
  const terminate = () => {
    for (const child of running) {
      if (!leaving.has(child) && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
  };
  if (signalledGroup) setTimeout(terminate, 1500).unref();
  else terminate();
  let left = running.length;
  if (left === 0) process.exit(exitCode);
  for (const child of running) {
    child.once('exit', (childCode) => {
      if (childCode !== 0) exitCode = 1;
      left--;
      if (left === 0) process.exit(exitCode);
    });
  }
}
process.on('SIGINT', () => stopAll(0, true));
process.on('SIGTERM', () => stopAll(0));

start('superpeer', ['superpeer'], {});
for (let i = 1; i <= peerCount; i++) {
  const shareDir = path.resolve(root, values.dir, `peer${i}`);
  fs.mkdirSync(shareDir, { recursive: true });
  start(`peer${i}`, ['peer'], {
    PEER_SHARE_DIR: shareDir,
    PEER_NAME: `peer${i}`,
    PEER_HTTP_HOST: '127.0.0.1',
    PEER_HTTP_PORT: '0',
    PEER_DEMO_FILES: 'true',
  });
}
process.stdout.write(
  `local network: superpeer + ${peerCount} peers sharing ${values.dir}/peer1..${peerCount}; try \`npx p2p search guide\`; Ctrl-C stops\n`,
);
