import { promises as dns } from 'node:dns';
import os from 'node:os';
import { NodeNameSchema } from '../../libs/protocol/index.js';

/**
 * A peer's default display name in a container: the name `docker-compose ps` shows for it, without the
 * project, so that the management UI, search results and `ps` name the same peer alike (`peer_3`).
 *
 * Docker's embedded DNS (127.0.0.11, on every user-defined network, so on every compose network) answers
 * a PTR query of a container's address with `<container name>.<network name>`. Compose names a
 * container `<project>_<service>_<n>` (v1) or `<project>-<service>-<n>` (v2) and a network
 * `<project>_<network>`: the project is the longest prefix the two share before a separator.
 */
export function nameFromPtr(ptr: string): string | undefined {
  const answer = ptr.replace(/\.$/, '');
  const dot = answer.indexOf('.');
  if (dot <= 0) return undefined;
  const container = answer.slice(0, dot);
  const network = answer.slice(dot + 1);
  let name = container;
  for (let end = container.length - 1; end > 0; end--) {
    const separator = container[end];
    if ((separator === '_' || separator === '-') && network.startsWith(`${container.slice(0, end)}_`)) {
      name = container.slice(end + 1);
      break;
    }
  }
  return NodeNameSchema.safeParse(name).success ? name : undefined;
}

/** Bounds on the lookups: a host without Docker's DNS must not hold the peer's start for long. */
const PTR_TIMEOUT_MS = 500;
const PTR_TRIES = 2;
const MAX_ADDRESSES = 8;
/** Docker's embedded DNS server: only its PTR answers have the `<container>.<network>` form. */
const DOCKER_DNS = '127.0.0.11';

/**
 * The display name from Docker's DNS for this container's first non-internal IPv4 address that has one,
 * or undefined outside a user-defined Docker network (another resolver, no PTR answer, or one that is not a
 * valid name): the peer then keeps the name stored in its share (or `peer-<id>`). Never throws.
 */
export async function containerName(): Promise<string | undefined> {
  // Elsewhere a PTR answer names the machine, which every peer on it would share.
  if (!dns.getServers().includes(DOCKER_DNS)) return undefined;
  const resolver = new dns.Resolver({ timeout: PTR_TIMEOUT_MS, tries: PTR_TRIES });
  const addresses = Object.values(os.networkInterfaces())
    .flatMap((entries) => entries ?? [])
    .filter((entry) => entry.family === 'IPv4' && !entry.internal)
    .map((entry) => entry.address)
    .slice(0, MAX_ADDRESSES);
  for (const address of addresses) {
    // A PTR query, not resolver.reverse(): that answers this container's own address from /etc/hosts
    // (the container id) before asking the DNS.
    const ptrName = `${address.split('.').reverse().join('.')}.in-addr.arpa`;
    const answers = await resolver.resolvePtr(ptrName).catch(() => [] as string[]);
    for (const answer of answers) {
      const name = nameFromPtr(answer);
      if (name !== undefined) return name;
    }
  }
  return undefined;
}
