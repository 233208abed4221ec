import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { test } from 'node:test';
import {
  AMQP_URL,
  cleanupNamespace,
  makeTempDir,
  REPO_ROOT,
  testNamespace,
  waitUntil,
} from '../helpers/network.js';

test('npm run network: Ctrl-C (SIGINT to the whole process group) makes every service leave and exit 0', async () => {
  const namespace = testNamespace('localnet');
  const dir = await makeTempDir('localnet');
  const lines: string[] = [];
  // Its own process group, as a terminal's foreground job: kill(-pid) reaches the script and its services.
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'dist/scripts/local-network.js'), '--peers', '2', '--dir', dir],
    {
      cwd: REPO_ROOT,
      detached: true,
      env: { ...process.env, AMQP_URL, P2P_NAMESPACE: namespace, LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (line) => lines.push(line));
  }
  try {
    await waitUntil(
      () =>
        lines.filter((line) => line.includes('"peer ready"')).length === 2 &&
        lines.some((line) => line.includes('"superpeer ready"')),
      { timeoutMs: 30_000, what: 'the superpeer and both peers ready' },
    );
    process.kill(-child.pid!, 'SIGINT');
    const code = await Promise.race([
      exited,
      new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 15_000)),
    ]);
    assert.equal(code, 0, lines.join('\n'));
    const exitLines = lines.filter((line) => / exited \(/.test(line));
    assert.equal(exitLines.length, 3, exitLines.join('\n'));
    for (const line of exitLines) assert.match(line, /exited \(0\)$/);
    assert.ok(!lines.some((line) => line.includes('second signal')), 'no service saw a second signal');
    assert.ok(!lines.some((line) => line.includes('could not announce the leave')), 'every leave published');
  } finally {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    await cleanupNamespace(namespace).catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  }
});
