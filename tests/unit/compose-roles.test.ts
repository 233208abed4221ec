import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** dist/tests/unit/ → repository root. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

type Service = { environment?: Record<string, string>; volumes?: string[] };
const composeFile = (file: string) =>
  (parse(read(file), { merge: true }) as { services: Record<string, Service> }).services;

/** The role each service connects as (compose gives it the role's account in AMQP_URL). */
const ROLES = { superpeer: 'superpeer', peer: 'peer', cli: 'client' } as const;

for (const [file, conf, nodes] of [
  ['docker-compose.yml', 'deploy/rabbitmq/rabbitmq.conf', ['rabbitmq']],
  ['docker-compose.cluster.yml', 'deploy/cluster/rabbitmq.conf', ['rabbitmq1', 'rabbitmq2', 'rabbitmq3']],
] as const) {
  describe(`${file}: least privilege`, () => {
    const services = composeFile(file);

    for (const [service, role] of Object.entries(ROLES)) {
      test(`${service} connects as p2p-${role}, its password from RABBITMQ_${role.toUpperCase()}_PASSWORD`, () => {
        assert.equal(
          services[service]?.environment?.AMQP_URL,
          `amqp://p2p-${role}:\${RABBITMQ_${role.toUpperCase()}_PASSWORD:-change-me-${role}}@rabbitmq:5672`,
        );
      });
    }

    test('every RabbitMQ node loads the definitions at start, both files mounted read-only', () => {
      assert.match(read(conf), /^load_definitions = \/etc\/rabbitmq\/definitions\.json$/m);
      for (const node of nodes) {
        const volumes = services[node]?.volumes ?? [];
        assert.ok(volumes.includes(`./${conf}:/etc/rabbitmq/rabbitmq.conf:ro`), `${node}: ${conf}`);
        assert.ok(
          volumes.some((volume) => /\.json\}?:\/etc\/rabbitmq\/definitions\.json:ro$/.test(volume)),
          `${node}: definitions`,
        );
      }
    });
  });
}

test('the cluster definitions are the single broker ones without queues (quorum queues come from the superpeer)', () => {
  const single = JSON.parse(read('deploy/rabbitmq/definitions.json')) as Record<string, unknown>;
  const cluster = JSON.parse(read('deploy/cluster/definitions.json')) as Record<string, unknown>;
  assert.deepEqual(cluster, { ...single, queues: [], bindings: [] });
});

test('rabbitmq-roles.sh --hashes prints RabbitMQ salted SHA-256 hashes of the role passwords', () => {
  const passwords = {
    RABBITMQ_SUPERPEER_PASSWORD: 's3 cret',
    RABBITMQ_PEER_PASSWORD: 'p%3',
    RABBITMQ_CLIENT_PASSWORD: 'c:3@',
    RABBITMQ_OPERATOR_PASSWORD: 'ö-operator',
  };
  const out = execFileSync('bash', [join(ROOT, 'scripts/rabbitmq-roles.sh'), 'p2p', '--hashes'], {
    encoding: 'utf8',
    env: { ...process.env, ...passwords },
  });
  const lines = out.trim().split('\n');
  assert.deepEqual(
    lines.map((line) => line.split('\t')[0]),
    ['p2p-superpeer', 'p2p-peer', 'p2p-client', 'p2p-operator'],
  );
  for (const line of lines) {
    const [user, hash] = line.split('\t') as [string, string];
    const password = passwords[`RABBITMQ_${user.slice(4).toUpperCase()}_PASSWORD` as keyof typeof passwords];
    const raw = Buffer.from(hash, 'base64');
    assert.equal(raw.length, 36, user);
    const digest = createHash('sha256')
      .update(Buffer.concat([raw.subarray(0, 4), Buffer.from(password)]))
      .digest();
    assert.ok(raw.subarray(4).equals(digest), user);
  }
});
