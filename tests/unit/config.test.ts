import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CONFIG_KEYS,
  defaultSuperpeerId,
  type Env,
  loadCliConfig,
  loadPeerConfig,
  loadSuperpeerConfig,
  readSeedIni,
} from '../../libs/config/index.js';
import { isP2PError } from '../../libs/errors/index.js';

type Loader = (env: Env) => unknown;

function assertConfigInvalid(fn: () => unknown, key: string, value?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isP2PError(err, 'CONFIG_INVALID'), `expected CONFIG_INVALID, got ${String(err)}`);
    assert.equal(err.details.key, key);
    assert.ok(err.message.startsWith(`${key}: `), err.message);
    assert.ok(!err.message.includes('\n'), 'one line');
    if (value !== undefined) assert.ok(err.message.endsWith(`(got ${JSON.stringify(value)})`), err.message);
    return true;
  });
}

describe('defaults', () => {
  test('superpeer', () => {
    assert.deepEqual(loadSuperpeerConfig({}), {
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      namespace: 'p2p',
      queueType: 'classic',
      logLevel: 'info',
      logFormat: 'auto',
      superpeerId: defaultSuperpeerId(hostname()),
      peerTimeoutMs: 6000,
      sweepIntervalMs: 1000,
      rpcPrefetch: 64,
      maxFilesPerPeer: 100_000,
      metricsPort: undefined,
      decodeWorkers: undefined,
    });
  });

  test('peer', () => {
    assert.deepEqual(loadPeerConfig({}), {
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      namespace: 'p2p',
      queueType: 'classic',
      logLevel: 'info',
      logFormat: 'auto',
      shareDir: './share',
      httpHost: '0.0.0.0',
      httpPort: 0,
      publicUrl: undefined,
      advertiseHost: undefined,
      name: undefined,
      heartbeatIntervalMs: 2000,
      rescanIntervalMs: 10_000,
      maxTransfers: 8,
      maxTransfersPerClient: 2,
      slowReaderMinBytes: 65_536,
      slowReaderWindowMs: 20_000,
      httpIdleTimeoutMs: 30_000,
      searchTimeoutMs: 2000,
      demoFiles: false,
      webLoopbackOnly: false,
      warnings: [],
    });
  });

  test('cli', () => {
    assert.deepEqual(loadCliConfig({}), {
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      namespace: 'p2p',
      queueType: 'classic',
      logLevel: 'info',
      logFormat: 'auto',
      timeoutMs: 3000,
      peerUrl: undefined,
    });
  });

  test('an empty or blank value counts as unset', () => {
    const config = loadPeerConfig({
      PEER_HTTP_PORT: '',
      PEER_NAME: '  ',
      LOG_LEVEL: '',
      PEER_PUBLIC_URL: '',
    });
    assert.equal(config.httpPort, 0);
    assert.equal(config.name, undefined);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.publicUrl, undefined);
  });

  test('the default superpeer id is sp-<hostname> cut to the peer-id charset and 64 characters', () => {
    assert.equal(defaultSuperpeerId('box-1.lan'), 'sp-box-1.lan');
    assert.equal(defaultSuperpeerId('my host/ü'), 'sp-my-host--');
    const long = defaultSuperpeerId('h'.repeat(100));
    assert.equal(long.length, 64);
    assert.match(long, /^sp-h+$/);
    assert.match(defaultSuperpeerId(), /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
  });
});

describe('values are coerced from strings', () => {
  test('superpeer', () => {
    const config = loadSuperpeerConfig({
      AMQP_URL: 'amqps://user:pw@broker.example:5671/vhost',
      P2P_NAMESPACE: 'test_1.a-b',
      LOG_LEVEL: 'DEBUG',
      LOG_FORMAT: 'json',
      SUPERPEER_ID: 'sp-1',
      SUPERPEER_PEER_TIMEOUT_MS: '9000',
      SUPERPEER_SWEEP_INTERVAL_MS: ' 250 ',
      SUPERPEER_RPC_PREFETCH: '1000',
      SUPERPEER_METRICS_PORT: '0',
      SUPERPEER_MAX_FILES_PER_PEER: '5000',
    });
    assert.equal(config.amqpUrl, 'amqps://user:pw@broker.example:5671/vhost');
    assert.equal(config.namespace, 'test_1.a-b');
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.logFormat, 'json');
    assert.equal(config.superpeerId, 'sp-1');
    assert.equal(config.peerTimeoutMs, 9000);
    assert.equal(config.sweepIntervalMs, 250);
    assert.equal(config.rpcPrefetch, 1000);
    assert.equal(config.metricsPort, 0);
    assert.equal(config.maxFilesPerPeer, 5000);
  });

  test('PEER_ID, from before ids were derived from keys, is read as the display name, with a warning', () => {
    const legacy = loadPeerConfig({ PEER_ID: 'peer1' });
    assert.equal(legacy.name, 'peer1');
    assert.ok(legacy.warnings.some((w) => /PEER_ID is read as PEER_NAME/.test(w)));
    assert.ok(!legacy.warnings.some((w) => /unknown setting PEER_ID/.test(w)));
    assert.equal(loadPeerConfig({ PEER_ID: 'old', PEER_NAME: 'new' }).name, 'new');
    assert.throws(
      () => loadPeerConfig({ PEER_ID: '../x' }),
      (err) => isP2PError(err, 'CONFIG_INVALID'),
    );
  });

  test('peer', () => {
    const config = loadPeerConfig({
      PEER_SHARE_DIR: '/data/share',
      PEER_HTTP_HOST: '::',
      PEER_HTTP_PORT: '65535',
      PEER_PUBLIC_URL: 'https://peer.example:8443',
      PEER_NAME: 'peer-A.1_x',
      PEER_HEARTBEAT_INTERVAL_MS: '1',
      PEER_RESCAN_INTERVAL_MS: '0',
      PEER_MAX_TRANSFERS: '1',
      PEER_MAX_TRANSFERS_PER_CLIENT: '3',
      PEER_SLOW_READER_MIN_BYTES: '0',
      PEER_SLOW_READER_WINDOW_MS: '5000',
      PEER_HTTP_IDLE_TIMEOUT_MS: '5000',
      PEER_SEARCH_TIMEOUT_MS: '100',
      PEER_DEMO_FILES: 'yes',
    });
    assert.equal(config.shareDir, '/data/share');
    assert.equal(config.httpHost, '::');
    assert.equal(config.httpPort, 65535);
    assert.equal(config.publicUrl, 'https://peer.example:8443');
    assert.equal(config.name, 'peer-A.1_x');
    assert.equal(config.heartbeatIntervalMs, 1);
    assert.equal(config.rescanIntervalMs, 0);
    assert.equal(config.maxTransfers, 1);
    assert.equal(config.maxTransfersPerClient, 3);
    assert.equal(config.slowReaderMinBytes, 0);
    assert.equal(config.slowReaderWindowMs, 5000);
    assert.equal(config.httpIdleTimeoutMs, 5000);
    assert.equal(config.searchTimeoutMs, 100);
    assert.equal(config.demoFiles, true);
  });

  test('PEER_DEMO_FILES words', () => {
    for (const word of ['true', 'TRUE', '1', 'yes', 'Yes']) {
      assert.equal(loadPeerConfig({ PEER_DEMO_FILES: word }).demoFiles, true, word);
    }
    for (const word of ['false', 'False', '0', 'no', 'NO']) {
      assert.equal(loadPeerConfig({ PEER_DEMO_FILES: word }).demoFiles, false, word);
    }
  });

  test('cli', () => {
    const config = loadCliConfig({ P2P_TIMEOUT_MS: '10000', P2P_PEER_URL: 'http://peer:8080' });
    assert.equal(config.timeoutMs, 10_000);
    assert.equal(config.peerUrl, 'http://peer:8080');
  });

  test('keys of other services are not read', () => {
    assert.doesNotThrow(() => loadCliConfig({ PEER_HTTP_PORT: 'nonsense', SUPERPEER_RPC_PREFETCH: '0' }));
    assert.doesNotThrow(() => loadSuperpeerConfig({ P2P_TIMEOUT_MS: 'x' }));
  });
});

describe('a bad value gives CONFIG_INVALID naming its key', () => {
  const common = {
    AMQP_URL: ['http://127.0.0.1:5672', 'amqp:', 'localhost:5672', 'not a url'],
    P2P_NAMESPACE: ['-p2p', 'has space', 'a/b', 'x'.repeat(65), 'ü'],
    LOG_LEVEL: ['trace', 'verbose', '3'],
    LOG_FORMAT: ['text', 'yes'],
  };
  const integers = (min: number, max: number) => [
    'abc',
    '1.5',
    '-1',
    '0x10',
    '1e3',
    String(min - 1),
    String(max + 1),
  ];
  const bad: Record<string, { load: Loader; values: string[] }> = {
    ...Object.fromEntries(
      Object.entries(common).flatMap(([key, values]) => [
        [`superpeer ${key}`, { load: loadSuperpeerConfig, values }],
        [`peer ${key}`, { load: loadPeerConfig, values }],
        [`cli ${key}`, { load: loadCliConfig, values }],
      ]),
    ),
    SUPERPEER_ID: { load: loadSuperpeerConfig, values: ['-sp', 'sp 1', 'a'.repeat(65), 'sp/1'] },
    SUPERPEER_PEER_TIMEOUT_MS: { load: loadSuperpeerConfig, values: integers(1, 2_147_483_647) },
    SUPERPEER_SWEEP_INTERVAL_MS: { load: loadSuperpeerConfig, values: integers(1, 2_147_483_647) },
    SUPERPEER_RPC_PREFETCH: { load: loadSuperpeerConfig, values: integers(1, 1000) },
    SUPERPEER_METRICS_PORT: { load: loadSuperpeerConfig, values: integers(0, 65535) },
    SUPERPEER_MAX_FILES_PER_PEER: { load: loadSuperpeerConfig, values: integers(1, 10_000_000) },
    SUPERPEER_DECODE_WORKERS: { load: loadSuperpeerConfig, values: integers(0, 16) },
    PEER_HTTP_HOST: { load: loadPeerConfig, values: ['a b', 'host/path'] },
    PEER_HTTP_PORT: { load: loadPeerConfig, values: integers(0, 65535) },
    PEER_PUBLIC_URL: {
      load: loadPeerConfig,
      values: ['ftp://peer:21', 'peer:8080', 'http://user:pw@peer:8080', 'amqp://peer'],
    },
    P2P_QUEUE_TYPE: { load: loadPeerConfig, values: ['stream', 'quorum-ish', 'qq'] },
    PEER_ADVERTISE_HOST: {
      load: loadPeerConfig,
      values: ['-peer', 'a b', 'http://peer', 'peer:8080', '[zz]'],
    },
    PEER_NAME: { load: loadPeerConfig, values: ['.hidden', 'a b', 'a'.repeat(65), 'ä'] },
    PEER_HEARTBEAT_INTERVAL_MS: { load: loadPeerConfig, values: integers(1, 2_147_483_647) },
    PEER_RESCAN_INTERVAL_MS: { load: loadPeerConfig, values: integers(0, 2_147_483_647) },
    PEER_MAX_TRANSFERS: { load: loadPeerConfig, values: integers(1, 1000) },
    PEER_MAX_TRANSFERS_PER_CLIENT: { load: loadPeerConfig, values: integers(1, 1000) },
    PEER_SLOW_READER_MIN_BYTES: { load: loadPeerConfig, values: integers(0, 1_073_741_824) },
    PEER_SLOW_READER_WINDOW_MS: { load: loadPeerConfig, values: integers(1, 2_147_483_647) },
    PEER_HTTP_IDLE_TIMEOUT_MS: { load: loadPeerConfig, values: integers(1, 2_147_483_647) },
    PEER_SEARCH_TIMEOUT_MS: { load: loadPeerConfig, values: integers(1, 2_147_483_647) },
    PEER_DEMO_FILES: { load: loadPeerConfig, values: ['maybe', 'on', '2'] },
    PEER_WEB_LOOPBACK_ONLY: { load: loadPeerConfig, values: ['maybe', 'on', '2'] },
    P2P_TIMEOUT_MS: { load: loadCliConfig, values: integers(1, 2_147_483_647) },
    P2P_PEER_URL: { load: loadCliConfig, values: ['ftp://x', 'peer:8080', 'http://u:p@peer'] },
  };

  for (const [name, { load, values }] of Object.entries(bad)) {
    const key = name.split(' ').at(-1)!;
    test(name, () => {
      for (const value of values) {
        if (value.includes('@')) assertConfigInvalid(() => load({ [key]: value }), key);
        else assertConfigInvalid(() => load({ [key]: value }), key, value);
      }
    });
  }

  test('every key with a rule is covered above (except free-form PEER_SHARE_DIR)', () => {
    const covered = new Set(Object.keys(bad).map((name) => name.split(' ').at(-1)));
    const all = [...CONFIG_KEYS.common, ...CONFIG_KEYS.superpeer, ...CONFIG_KEYS.peer, ...CONFIG_KEYS.cli];
    assert.deepEqual(
      all.filter((key) => !covered.has(key)),
      ['PEER_SHARE_DIR'],
    );
  });

  test('the heartbeat interval must be > 0', () => {
    assertConfigInvalid(
      () => loadPeerConfig({ PEER_HEARTBEAT_INTERVAL_MS: '0' }),
      'PEER_HEARTBEAT_INTERVAL_MS',
      '0',
    );
  });

  test('the message is `<KEY>: <rule> (got "<value>")`', () => {
    assert.throws(
      () => loadSuperpeerConfig({ SUPERPEER_RPC_PREFETCH: '0' }),
      (err: unknown) =>
        isP2PError(err, 'CONFIG_INVALID') &&
        err.message === 'SUPERPEER_RPC_PREFETCH: must be an integer from 1 to 1000 (got "0")',
    );
  });

  test('only the first bad key is reported, in schema order', () => {
    assertConfigInvalid(
      () => loadPeerConfig({ PEER_DEMO_FILES: 'x', PEER_HTTP_PORT: 'x', LOG_LEVEL: 'x' }),
      'LOG_LEVEL',
    );
    assertConfigInvalid(
      () => loadPeerConfig({ PEER_DEMO_FILES: 'x', PEER_HTTP_PORT: 'x' }),
      'PEER_HTTP_PORT',
    );
  });

  test('a broker password never appears in the message', () => {
    for (const value of ['http://guest:s3cret@rabbitmq:5672', 'amqp//guest:s3cret@rabbitmq']) {
      assert.throws(
        () => loadSuperpeerConfig({ AMQP_URL: value }),
        (err: unknown) =>
          isP2PError(err, 'CONFIG_INVALID') && !err.message.includes('s3cret') && err.message.includes('***'),
      );
    }
  });

  test('unknown PEER_* keys are warnings, not errors', () => {
    const config = loadPeerConfig({ PEER_HTTP_PROT: '8080' });
    assert.equal(config.warnings.length, 1);
    assert.match(config.warnings[0]!, /PEER_HTTP_PROT/);
  });
});

describe('seed INI peer config', () => {
  let dir: string;
  const ini = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2p-config-test-'));
    await mkdir(join(dir, 'configs'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const SEED =
    '[DEFAULT]\nIP = localhost\nPORT = 5001\nDIRECTORY = ./files_peer_1/\nSUPERPEER = localhost:5000\n';

  test('maps DIRECTORY (relative to the INI file), PORT and IP + PORT', async () => {
    const path = await ini('configs/peer1.config', SEED);
    const { env, warnings } = readSeedIni(path);
    assert.deepEqual(env, {
      PEER_SHARE_DIR: resolve(dir, 'configs', 'files_peer_1'),
      PEER_HTTP_PORT: '5001',
      PEER_PUBLIC_URL: 'http://localhost:5001',
    });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /SUPERPEER/);
    assert.match(warnings[0]!, /RabbitMQ/);
  });

  test('loadPeerConfig reads it, with the SUPERPEER warning in warnings', async () => {
    const path = await ini('configs/peer1b.config', SEED);
    const config = loadPeerConfig({}, { iniFile: path });
    assert.equal(config.shareDir, resolve(dir, 'configs', 'files_peer_1'));
    assert.equal(config.httpPort, 5001);
    assert.equal(config.publicUrl, 'http://localhost:5001');
    assert.ok(config.warnings.some((warning) => /SUPERPEER/.test(warning)));
  });

  test('an absolute DIRECTORY stays as it is', async () => {
    const path = await ini('abs.config', '[DEFAULT]\nDIRECTORY = /srv/share\n');
    assert.equal(readSeedIni(path).env.PEER_SHARE_DIR, resolve('/srv/share'));
  });

  test('keys may be at top level and in any case; unknown keys and sections are warnings', async () => {
    const path = await ini(
      'mixed.config',
      'port = 5002\nip = 10.0.0.7\n[default]\ndirectory = d\ncolor = blue\n[extra]\nx = 1\n',
    );
    const { env, warnings } = readSeedIni(path);
    assert.deepEqual(env, {
      PEER_SHARE_DIR: resolve(dir, 'd'),
      PEER_HTTP_PORT: '5002',
      PEER_PUBLIC_URL: 'http://10.0.0.7:5002',
    });
    assert.equal(warnings.length, 2);
    assert.ok(warnings.some((warning) => warning.includes('color')));
    assert.ok(warnings.some((warning) => warning.includes('[extra]')));
  });

  test('an IPv6 IP is bracketed in the URL', async () => {
    const path = await ini('v6.config', '[DEFAULT]\nIP = ::1\nPORT = 5003\n');
    assert.equal(readSeedIni(path).env.PEER_PUBLIC_URL, 'http://[::1]:5003');
  });

  test('real env values win over INI values, key by key', async () => {
    const path = await ini('configs/peer2.config', SEED);
    const config = loadPeerConfig(
      { PEER_SHARE_DIR: '/from/env', PEER_PUBLIC_URL: 'http://peer.example:9999', PEER_HTTP_PORT: '' },
      { iniFile: path },
    );
    assert.equal(config.shareDir, '/from/env');
    assert.equal(config.publicUrl, 'http://peer.example:9999');
    // An empty env value is unset, so the INI value stands.
    assert.equal(config.httpPort, 5001);
  });

  test('when the env moves the port, the INI public URL follows it', async () => {
    const path = await ini('configs/peer3.config', SEED);
    const moved = loadPeerConfig({ PEER_HTTP_PORT: '6000' }, { iniFile: path });
    assert.equal(moved.httpPort, 6000);
    assert.equal(moved.publicUrl, 'http://localhost:6000');
    const anyPort = loadPeerConfig({ PEER_HTTP_PORT: '0' }, { iniFile: path });
    assert.equal(anyPort.httpPort, 0);
    assert.equal(anyPort.publicUrl, undefined);
  });

  test('a bad INI value gives CONFIG_INVALID naming the INI key and file', async () => {
    for (const [text, key] of [
      ['[DEFAULT]\nPORT = http\n', 'PORT'],
      ['[DEFAULT]\nPORT = 70000\n', 'PORT'],
      ['[DEFAULT]\nIP = bad host\nPORT = 5001\n', 'IP'],
      ['[DEFAULT]\nIP = host/path\nPORT = 5001\n', 'IP'],
      ['[DEFAULT]\nDIRECTORY =\n', 'DIRECTORY'],
    ] as const) {
      const path = await ini('bad.config', text);
      assert.throws(
        () => loadPeerConfig({}, { iniFile: path }),
        (err: unknown) =>
          isP2PError(err, 'CONFIG_INVALID') &&
          err.details.key === key &&
          err.details.file === path &&
          err.message.startsWith(`${key} in ${path}:`),
        text,
      );
    }
  });

  test('a missing INI file gives CONFIG_INVALID naming the path', () => {
    const path = join(dir, 'nope.config');
    assert.throws(
      () => loadPeerConfig({}, { iniFile: path }),
      (err: unknown) => isP2PError(err, 'CONFIG_INVALID') && err.message.includes(path),
    );
  });
});
