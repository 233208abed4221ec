import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { readEnvFile } from '../../libs/config/index.js';
import { DEFAULT_RABBITMQ_IMAGE } from '../helpers/broker.js';

/** dist/tests/unit/ → repository root. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

type Service = Record<string, unknown>;

// Compose resolves `<<` merge keys (YAML 1.1); read the file the same way.
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

/** Dockerfile instructions of the last stage, continuation lines joined. */
function lastStageInstructions(): { instruction: string; args: string }[] {
  const lines = dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const lastFrom = lines.findLastIndex((line) => /^FROM\s/i.test(line));
  return lines.slice(lastFrom).map((line) => {
    const [instruction, ...rest] = line.split(/\s+/);
    return { instruction: instruction!.toUpperCase(), args: rest.join(' ') };
  });
}

/** The exec-form array of an instruction (`["node", "bin/p2p.js"]`); shell form would not forward signals. */
function execForm(instruction: string): string[] | undefined {
  const found = lastStageInstructions().findLast((entry) => entry.instruction === instruction);
  if (found === undefined) return undefined;
  const value: unknown = JSON.parse(found.args);
  assert.ok(Array.isArray(value), `${instruction} must be in exec form`);
  return value as string[];
}

/** Compose's `command`/`entrypoint` may be a list or a string; this project only uses lists. */
function asList(value: unknown, what: string): string[] | undefined {
  if (value === undefined) return undefined;
  assert.ok(
    Array.isArray(value) && value.every((part) => typeof part === 'string'),
    `${what} must be a list`,
  );
  return value as string[];
}

/** What the container runs: compose overrides the image's ENTRYPOINT/CMD when it sets them. */
function resolvedCommand(name: string): string[] {
  const service = services[name]!;
  const entrypoint = asList(service.entrypoint, `${name}.entrypoint`) ?? execForm('ENTRYPOINT') ?? [];
  const command = asList(service.command, `${name}.command`) ?? execForm('CMD') ?? [];
  return [...entrypoint, ...command];
}

function envFiles(service: Service): string[] {
  const value = service.env_file;
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((entry) => (typeof entry === 'string' ? entry : String((entry as { path: unknown }).path)));
}

describe('docker-compose.yml', () => {
  test('has rabbitmq, superpeer and peer services', () => {
    for (const name of ['rabbitmq', 'superpeer', 'peer']) assert.ok(services[name], `service ${name}`);
  });

  test('no service has a container_name (it would stop scaling)', () => {
    for (const [name, service] of Object.entries(services)) {
      assert.equal(service.container_name, undefined, `${name}.container_name`);
    }
  });

  test('rabbitmq is pinned to an exact 4.x management image', () => {
    assert.match(String(services.rabbitmq!.image), /^rabbitmq:4\.\d+\.\d+-management$/);
  });

  test('rabbitmq publishes 5672 and 15672 on loopback, at host ports a variable can move', () => {
    const ports = (services.rabbitmq!.ports as unknown[]).map(String);
    const published = (variable: string, port: number) => `127.0.0.1:\${${variable}:-${port}}:${port}`;
    assert.ok(ports.includes(published('RABBITMQ_PORT', 5672)), ports.join(', '));
    assert.ok(ports.includes(published('RABBITMQ_MANAGEMENT_PORT', 15672)), ports.join(', '));
  });

  test('no anonymous volume anywhere (they outlive scale-down and `down -v`); named ones are declared', () => {
    const rabbitVolumes = (services.rabbitmq!.volumes as unknown[] | undefined)?.map(String) ?? [];
    // The image declares VOLUME /var/lib/rabbitmq: a named volume must take its place.
    assert.ok(
      rabbitVolumes.some((entry) => entry.endsWith(':/var/lib/rabbitmq')),
      rabbitVolumes.join(', '),
    );
    for (const [name, service] of Object.entries(services)) {
      for (const entry of (service.volumes as unknown[] | undefined) ?? []) {
        assert.equal(typeof entry, 'string', `${name}: short syntax`);
        const [source] = String(entry).split(':');
        assert.ok(String(entry).includes(':'), `${name}: anonymous volume ${String(entry)}`);
        if (!/^[.$/]/.test(source!))
          assert.ok(compose.volumes && source! in compose.volumes, `${name}: ${source}`);
      }
    }
  });

  test('the test runner starts the same RabbitMQ image compose runs', () => {
    assert.equal(services.rabbitmq!.image, DEFAULT_RABBITMQ_IMAGE);
  });

  test('superpeer and peer have a `p2p health` healthcheck; peers wait for a healthy superpeer', () => {
    for (const name of ['superpeer', 'peer']) {
      const healthcheck = services[name]!.healthcheck as { test?: string[] } | undefined;
      assert.deepEqual(healthcheck?.test, ['CMD', 'node', 'bin/p2p.js', 'health', name]);
    }
    const dependsOn = services.peer!.depends_on as Record<string, { condition?: string }>;
    assert.equal(dependsOn.superpeer?.condition, 'service_healthy');
  });

  test('the superpeer has a fixed host name, so its id (sp-<host name>) survives a recreate', () => {
    assert.equal(services.superpeer!.hostname, 'superpeer');
  });

  test('the cli saves downloads into a folder mounted from the host', () => {
    const cli = services.cli!;
    const mounts = ((cli.volumes as unknown[] | undefined) ?? []).map(String);
    assert.ok(
      mounts.some((entry) => entry.endsWith(`:${String(cli.working_dir)}`)),
      mounts.join(', '),
    );
    assert.deepEqual(cli.entrypoint, ['node', '/app/bin/p2p.js']);
  });

  test('rabbitmq has a rabbitmq-diagnostics ping healthcheck with timings', () => {
    const healthcheck = services.rabbitmq!.healthcheck as Record<string, unknown> | undefined;
    assert.ok(healthcheck, 'healthcheck');
    const testCommand = Array.isArray(healthcheck.test)
      ? healthcheck.test.join(' ')
      : String(healthcheck.test);
    assert.match(testCommand, /rabbitmq-diagnostics -q ping/);
    for (const key of ['interval', 'timeout', 'retries', 'start_period']) {
      assert.ok(healthcheck[key] !== undefined, `healthcheck.${key}`);
    }
  });

  for (const name of ['superpeer', 'peer']) {
    test(`${name} waits for a healthy rabbitmq`, () => {
      const dependsOn = services[name]!.depends_on as Record<string, { condition?: string }> | undefined;
      assert.equal(dependsOn?.rabbitmq?.condition, 'service_healthy');
    });

    test(`${name} runs bin/p2p.js ${name}`, () => {
      assert.deepEqual(resolvedCommand(name), ['node', 'bin/p2p.js', name]);
    });

    test(`${name} restarts unless stopped and stops gracefully with SIGTERM through an init`, () => {
      const service = services[name]!;
      assert.equal(service.restart, 'unless-stopped');
      assert.equal(service.init, true);
      assert.equal(service.stop_signal ?? 'SIGTERM', 'SIGTERM');
      assert.equal(service.stop_grace_period, '10s');
    });

    test(`${name} is built from this Dockerfile`, () => {
      const build = services[name]!.build;
      const context =
        typeof build === 'string' ? build : (build as { context?: string } | undefined)?.context;
      assert.equal(context, '.');
    });

    test(`${name} reads env/${name}.env`, () => {
      assert.ok(envFiles(services[name]!).includes(`env/${name}.env`));
    });
  }

  test('every env_file exists', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const file of envFiles(service)) assert.ok(existsSync(join(ROOT, file)), `${name}: ${file}`);
    }
  });

  test('peer has no fixed host port (each replica would fight for it)', () => {
    const peer = services.peer!;
    for (const entry of (peer.ports as unknown[] | undefined) ?? []) {
      if (typeof entry === 'object' && entry !== null) {
        assert.equal((entry as { published?: unknown }).published, undefined, JSON.stringify(entry));
      } else {
        assert.match(String(entry), /^\d+(\/(tcp|udp))?$/, `container port only: ${String(entry)}`);
      }
    }
    assert.deepEqual((peer.expose as unknown[] | undefined)?.map(String), ['8080']);
  });

  test('peer replicas share no named volume or bind mount', () => {
    for (const entry of (services.peer!.volumes as unknown[] | undefined) ?? []) {
      if (typeof entry === 'string') {
        assert.ok(!entry.includes(':'), `anonymous volume only: ${entry}`);
      } else {
        const volume = entry as { type?: string; source?: string };
        assert.ok(volume.type === 'tmpfs' || volume.source === undefined, JSON.stringify(entry));
      }
    }
  });

  test('peer leaves PEER_PUBLIC_URL unset so each replica derives its own', () => {
    const peer = services.peer!;
    const environment = peer.environment;
    const inline = Array.isArray(environment)
      ? environment.map(String)
      : Object.keys((environment as Record<string, unknown> | undefined) ?? {});
    assert.ok(!inline.some((entry) => entry.startsWith('PEER_PUBLIC_URL')));
    for (const file of envFiles(peer)) {
      const env = readEnvFile(join(ROOT, file));
      assert.equal(env.PEER_PUBLIC_URL, undefined, file);
      assert.equal(env.PEER_HTTP_PORT, '8080', file);
      assert.equal(env.PEER_SHARE_DIR, '/data/share', file);
      assert.equal(env.PEER_DEMO_FILES, 'true', file);
    }
  });
});

describe('Dockerfile', () => {
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gim)].map((match) => match[1]!);

  test('is multi-stage, every stage on a pinned node 20 bookworm-slim', () => {
    assert.ok(froms.length >= 2, `FROM count ${froms.length}`);
    for (const image of froms) assert.match(image, /^node:20\.\d+\.\d+-bookworm-slim$/);
  });

  test('installs with npm ci, builds, and prunes dev dependencies', () => {
    assert.match(dockerfile, /^RUN npm ci\b/m);
    assert.match(dockerfile, /npm run build/);
    assert.match(dockerfile, /npm prune --omit=dev/);
  });

  test('the runtime stage copies what bin/p2p.js needs and runs as node', () => {
    const stage = lastStageInstructions();
    const copies = stage.filter((entry) => entry.instruction === 'COPY').map((entry) => entry.args);
    for (const path of ['package.json', 'node_modules', 'dist', 'bin']) {
      assert.ok(
        copies.some((args) => args.includes(path)),
        `runtime COPY of ${path}`,
      );
    }
    assert.equal(stage.findLast((entry) => entry.instruction === 'USER')?.args, 'node');
  });

  test('needs no image from a registry beyond its base (no `# syntax` line) and exposes no port', () => {
    assert.doesNotMatch(dockerfile, /^#\s*syntax=/m);
    // Only a peer listens, on PEER_HTTP_PORT; the superpeer would show a port nothing listens on.
    assert.ok(!lastStageInstructions().some((entry) => entry.instruction === 'EXPOSE'));
  });

  test('ENTRYPOINT is node bin/p2p.js and CMD defaults to peer', () => {
    assert.deepEqual(execForm('ENTRYPOINT'), ['node', 'bin/p2p.js']);
    assert.deepEqual(execForm('CMD'), ['peer']);
  });
});

test('.dockerignore keeps local state out of the build context', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim());
  for (const entry of ['node_modules', 'dist', '.git', '.network']) assert.ok(ignored.includes(entry), entry);
});

test('the build stage compiles from only the files it copies (no test or benchmark code needed)', () => {
  const lines = dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const froms = lines.flatMap((line, i) => (/^FROM\s/i.test(line) ? [i] : []));
  const buildStage = lines.slice(froms[0]! + 1, froms[1]);
  const sources = buildStage
    .filter((line) => /^COPY\s/i.test(line) && !/--from=/.test(line))
    .flatMap((line) => line.split(/\s+/).slice(1, -1));
  const buildRun = buildStage.find((line) => /^RUN npm run build/.test(line));
  const script = buildRun?.match(/npm run ([\w:-]+)/)?.[1];
  assert.ok(script, 'the build stage runs an npm build script');
  const command = (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  ).scripts[script];
  const project = command?.match(/^tsc -p (\S+)$/)?.[1];
  assert.ok(project, `npm run ${script} is a plain tsc build`);

  const context = mkdtempSync(join(tmpdir(), 'p2p-docker-context-'));
  try {
    for (const source of sources) cpSync(join(ROOT, source), join(context, source), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(context, 'node_modules'));
    const result = spawnSync(
      process.execPath,
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', project, '--noEmit'],
      { cwd: context, encoding: 'utf8' },
    );
    assert.equal(
      result.status,
      0,
      `tsc in the build stage's context failed:\n${result.stdout}${result.stderr}`,
    );
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
});

describe('docker-compose.cluster.yml', () => {
  const cluster = parse(readFileSync(join(ROOT, 'docker-compose.cluster.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, Service>;
    volumes?: Record<string, unknown>;
  };
  const nodes = ['rabbitmq1', 'rabbitmq2', 'rabbitmq3'];
  const conf = readFileSync(join(ROOT, 'deploy/cluster/rabbitmq.conf'), 'utf8');
  const haproxy = readFileSync(join(ROOT, 'deploy/cluster/haproxy.cfg'), 'utf8');

  test('three RabbitMQ nodes with fixed host names, one named volume each, found by classic config', () => {
    for (const [i, name] of nodes.entries()) {
      const node = cluster.services[name]!;
      assert.equal(node.image, services.rabbitmq!.image);
      assert.equal(node.hostname, name);
      const volumes = (node.volumes as string[]).map(String);
      assert.ok(volumes.includes(`${name}-data:/var/lib/rabbitmq`), volumes.join(', '));
      assert.ok(cluster.volumes && `${name}-data` in cluster.volumes);
      assert.match(
        conf,
        new RegExp(`^cluster_formation\\.classic_config\\.nodes\\.${i + 1} = rabbit@${name}$`, 'm'),
      );
    }
    assert.match(conf, /^cluster_formation\.peer_discovery_backend = classic_config$/m);
  });

  test('the services reach every node through one address, `rabbitmq` (HAProxy), and use quorum queues', () => {
    for (const name of nodes) assert.match(haproxy, new RegExp(`server ${name} ${name}:5672`));
    assert.match(haproxy, /on-marked-down shutdown-sessions/);
    for (const name of ['superpeer', 'peer', 'cli']) {
      const service = cluster.services[name]!;
      assert.equal((service.environment as Record<string, string>).P2P_QUEUE_TYPE, 'quorum', name);
      assert.deepEqual(service.env_file, services[name]!.env_file, name);
      assert.deepEqual(service.command, services[name]!.command, name);
    }
    const ports = (cluster.services.rabbitmq!.ports as unknown[]).map(String);
    assert.deepEqual(ports, (services.rabbitmq!.ports as unknown[]).map(String));
  });

  test('no container_name, no anonymous volume', () => {
    for (const [name, service] of Object.entries(cluster.services)) {
      assert.equal(service.container_name, undefined, name);
      for (const entry of (service.volumes as unknown[] | undefined) ?? []) {
        assert.ok(String(entry).includes(':'), `${name}: anonymous volume ${String(entry)}`);
      }
    }
  });
});

describe('env/compose.env.example', () => {
  test('lists every variable the compose files read, with the same default, and nothing they do not read', () => {
    const used = new Map<string, string>();
    for (const file of ['docker-compose.yml', 'docker-compose.cluster.yml']) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const [, name, fallback] of text.matchAll(/\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}/g))
        used.set(name!, fallback!);
    }
    const example = readFileSync(join(ROOT, 'env/compose.env.example'), 'utf8');
    const listed = new Map(
      [...example.matchAll(/^#\s*([A-Z][A-Z0-9_]*)=(.*)$/gm)].map(([, name, value]) => [name!, value!]),
    );
    assert.ok(used.size > 0, 'the compose files read variables');
    for (const [name, fallback] of used)
      assert.equal(listed.get(name), fallback, `${name} listed with its default`);
    // The roles script's operator password is the one listed key compose itself does not read.
    const extra = [...listed.keys()].filter((name) => !used.has(name));
    assert.deepEqual(extra, ['RABBITMQ_OPERATOR_PASSWORD']);
  });
});
