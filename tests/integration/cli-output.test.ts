import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { P2P_BIN, REPO_ROOT, startNetwork, type TestNetwork, waitUntil } from '../helpers/network.js';

/*
 * `p2p search --json` and `p2p peers --json` piped into another program: the whole output arrives, even
 * past the 64 KiB a pipe buffers and with a reader slower than the CLI.
 */

const FILES = 600;

/** Runs `p2p <args> | (sleep 1; cat)` in a shell: a real pipe, read only after the CLI wanted to exit. */
function pipedThroughSlowReader(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string }> {
  const quoted = [process.execPath, P2P_BIN, ...args]
    .map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `${quoted} | { sleep 1; cat; }`], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the piped command did not finish'));
    }, 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout });
    });
  });
}

describe('CLI output through a pipe', { timeout: 180_000 }, () => {
  let network: TestNetwork;

  before(async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < FILES; i++)
      files[`albums/alpha-track-with-a-long-descriptive-name-${i}.txt`] = `track ${i}`;
    network = await startNetwork({ label: 'cli-output', peers: [files] });
    await waitUntil(
      async () => {
        const { stdout } = await pipedThroughSlowReader(
          ['search', '--json', '--limit', '1000', 'alpha'],
          network.env,
        );
        return (JSON.parse(stdout) as unknown[]).length === FILES;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'every file to be searchable' },
    );
  });

  after(async () => {
    await network?.stop();
  });

  test('search --json past 64 KiB arrives whole', async () => {
    const { code, stdout } = await pipedThroughSlowReader(
      ['search', '--json', '--limit', '1000', 'alpha'],
      network.env,
    );
    assert.equal(code, 0);
    assert.ok(stdout.length > 64 * 1024, `output of ${stdout.length} bytes is over 64 KiB`);
    const results = JSON.parse(stdout) as Array<{ name: string }>;
    assert.equal(results.length, FILES);
  });

  test('peers --json arrives whole, and a plain table too', async () => {
    const json = await pipedThroughSlowReader(['peers', '--json'], network.env);
    assert.equal(json.code, 0);
    assert.equal((JSON.parse(json.stdout) as unknown[]).length, 1);
    const table = await pipedThroughSlowReader(['search', '--limit', '1000', 'alpha'], network.env);
    assert.equal(table.code, 0);
    assert.ok(table.stdout.length > 64 * 1024, `table of ${table.stdout.length} bytes is over 64 KiB`);
    assert.match(table.stdout, new RegExp(`\\n${FILES} results\\n$`), 'ends with its summary line');
  });
});
