/**
 * The same network docker-compose runs, as local processes against a local RabbitMQ: one superpeer and
 * N peers (default 3), each sharing `.network/peerN` seeded with demo files. Ctrl-C stops them all (the
 * peers announce their leave). Usage: npm run network [-- --peers 5]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin/p2p.js');
const { values } = parseArgs({ options: { peers: { type: 'string', default: '3' } } });
const peerCount = Number(values.peers);
if (!Number.isInteger(peerCount) || peerCount < 1 || peerCount > 50) {
  process.stderr.write('--peers: a whole number from 1 to 50\n');
  process.exit(2);
}

const children: ChildProcess[] = [];

function start(label: string, args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: { LOG_FORMAT: 'pretty', ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `${label.padEnd(10)}| `;
  for (const stream of [child.stdout, child.stderr]) {
    readline
      .createInterface({ input: stream! })
      .on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
  }
  child.on('exit', (code, signal) => {
    process.stdout.write(`${prefix}exited (${signal ?? code})\n`);
    if (!stopping) stopAll(1);
  });
  children.push(child);
  return child;
}

let stopping = false;
function stopAll(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  let left = children.filter((child) => child.exitCode === null).length;
  if (left === 0) process.exit(code);
  for (const child of children) {
    child.once('exit', () => {
      left--;
      if (left === 0) process.exit(code);
    });
  }
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

start('superpeer', ['superpeer'], {});
for (let i = 1; i <= peerCount; i++) {
  const shareDir = path.join(root, '.network', `peer${i}`);
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
  `local network: superpeer + ${peerCount} peers sharing .network/peer1..${peerCount}; try \`npx p2p search guide\`; Ctrl-C stops\n`,
);
