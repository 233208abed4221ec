import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CONFIG_KEYS,
  loadCliConfig,
  loadPeerConfig,
  loadSuperpeerConfig,
  readEnvFile,
} from '../../libs/config/index.js';
import { isP2PError } from '../../libs/errors/index.js';

/** dist/tests/unit/ → repository root, where env/ lives. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('env files', () => {
  const SERVICE_FILES = {
    superpeer: 'env/superpeer.env',
    peer: 'env/peer.env',
    cli: 'env/cli.env',
  } as const;
  const ALL_KEYS = [...CONFIG_KEYS.common, ...CONFIG_KEYS.superpeer, ...CONFIG_KEYS.peer, ...CONFIG_KEYS.cli];

  /** Keys a file lists, set (`KEY=`) or shown commented out (`# KEY=`). */
  async function listedKeys(file: string): Promise<string[]> {
    const text = await readFile(join(ROOT, file), 'utf8');
    return [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1]!);
  }

  for (const [service, file] of Object.entries(SERVICE_FILES)) {
    test(`${file} lists exactly the keys the ${service} reads, each once`, async () => {
      const listed = await listedKeys(file);
      const expected = [...CONFIG_KEYS.common, ...CONFIG_KEYS[service as keyof typeof SERVICE_FILES]];
      assert.deepEqual([...listed].sort(), [...expected].sort());
    });

    test(`${file} parses, every set key is known, and the ${service} config loads from it`, () => {
      const env = readEnvFile(join(ROOT, file));
      const known = [...CONFIG_KEYS.common, ...CONFIG_KEYS[service as keyof typeof SERVICE_FILES]];
      for (const key of Object.keys(env))
        assert.ok(known.includes(key as never), `${file}: unknown key ${key}`);
      assert.equal(env.AMQP_URL, 'amqp://guest:guest@rabbitmq:5672');
      const load = { superpeer: loadSuperpeerConfig, peer: loadPeerConfig, cli: loadCliConfig }[service]!;
      assert.doesNotThrow(() => load(env));
    });
  }

  test('env/peer.env is what compose peers need', () => {
    const config = loadPeerConfig(readEnvFile(join(ROOT, 'env/peer.env')));
    assert.equal(config.httpPort, 8080);
    assert.equal(config.shareDir, '/data/share');
    assert.equal(config.demoFiles, true);
    // Replicas share this file; a pinned URL would make them all advertise one address.
    assert.equal(config.publicUrl, undefined);
    assert.equal(config.name, undefined);
    assert.deepEqual(config.warnings, []);
  });

  test('env/local.env.example lists every key once and loads for every service', async () => {
    const listed = await listedKeys('env/local.env.example');
    assert.deepEqual([...listed].sort(), [...ALL_KEYS].sort());
    const env = readEnvFile(join(ROOT, 'env/local.env.example'));
    for (const key of Object.keys(env)) assert.ok(ALL_KEYS.includes(key as never), `unknown key ${key}`);
    assert.equal(env.AMQP_URL, 'amqp://guest:guest@127.0.0.1:5672');
    assert.doesNotThrow(() => loadSuperpeerConfig(env));
    assert.doesNotThrow(() => loadPeerConfig(env));
    assert.doesNotThrow(() => loadCliConfig(env));
  });

  test('readEnvFile leaves process.env alone', () => {
    const before = process.env.PEER_DEMO_FILES;
    const env = readEnvFile(join(ROOT, 'env/peer.env'));
    assert.equal(env.PEER_DEMO_FILES, 'true');
    assert.equal(process.env.PEER_DEMO_FILES, before);
  });

  test('readEnvFile on a missing file gives CONFIG_INVALID naming the path', () => {
    const path = join(tmpdir(), 'p2p-no-such-dir', 'missing.env');
    assert.throws(
      () => readEnvFile(path),
      (err: unknown) => isP2PError(err, 'CONFIG_INVALID') && err.message.includes(path),
    );
  });
});
