import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/network.js';

const SHUTDOWN = path.join(REPO_ROOT, 'dist/services/shutdown.js');
const LOGGING = path.join(REPO_ROOT, 'dist/libs/logging/index.js');

/** Runs a tiny service that installs the shutdown handling, then does `act`; returns its exit and log lines. */
function runService(act: string): Promise<{ code: number | null; lines: Record<string, unknown>[] }> {
  const script = `
    const { installShutdown } = await import(${JSON.stringify(SHUTDOWN)});
    const { createLogger } = await import(${JSON.stringify(LOGGING)});
    const logger = createLogger({ service: 'test', level: 'info', format: 'json', stream: process.stdout });
    installShutdown(logger, async () => logger.info('closed'));
    setInterval(() => {}, 1000);
    ${act}
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  return new Promise((resolve) =>
    child.once('exit', (code) =>
      resolve({
        code,
        lines: out
          .split('\n')
          .filter((line) => line.trim().length > 0)
          .map((line) => JSON.parse(line) as Record<string, unknown>),
      }),
    ),
  );
}

test('an unhandled rejection is logged with its stack, the service closes and exits 1', async () => {
  const { code, lines } = await runService(
    "setTimeout(() => Promise.reject(new Error('boom in a promise')), 10);",
  );
  assert.equal(code, 1);
  const fatal = lines.find((line) => line.message === 'fatal: unhandled rejection');
  assert.ok(fatal, `a fatal line in ${JSON.stringify(lines)}`);
  assert.equal(fatal.reason, 'boom in a promise');
  assert.match(String(fatal.stack), /boom in a promise/);
  assert.ok(
    lines.some((line) => line.message === 'closed'),
    'close ran before the exit',
  );
});

test('an uncaught exception ends the process the same way', async () => {
  const { code, lines } = await runService("setTimeout(() => { throw new Error('boom in a timer'); }, 10);");
  assert.equal(code, 1);
  assert.ok(
    lines.some((line) => line.message === 'fatal: uncaught exception' && line.reason === 'boom in a timer'),
  );
  assert.ok(lines.some((line) => line.message === 'closed'));
});

test('SIGTERM closes the service and exits 0', async () => {
  const { code, lines } = await runService("setTimeout(() => process.kill(process.pid, 'SIGTERM'), 10);");
  assert.equal(code, 0);
  assert.ok(lines.some((line) => line.message === 'shutting down' && line.signal === 'SIGTERM'));
  assert.ok(lines.some((line) => line.message === 'closed'));
});
