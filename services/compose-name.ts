import { promises as dns } from 'node:dns';
import os from 'node:os';

/**
 * The replica name compose gives this container of `service`, `<service>_<n>` (e.g. `peer_3`), so that the names in
 * logs and the management UI match `docker compose ps`, and stay the same when the container is recreated.
 * Docker's DNS answers a reverse lookup of a container's address on a compose network with its container
 * name, `<project>_<service>_<n>.<network>` (Compose v1) or `<project>-<service>-<n>.<network>` (v2).
 * Looked up only where the host name is Docker's default (the container id), and for at most `timeoutMs`;
 * undefined anywhere else.
 */
export async function composeReplicaName(service: string, timeoutMs = 1000): Promise<string | undefined> {
  if (!/^[0-9a-f]{12}$/.test(os.hostname())) return undefined;
  const addresses = Object.values(os.networkInterfaces())
    .flat()
    .filter((address) => address !== undefined && address.family === 'IPv4' && !address.internal)
    .map((address) => address!.address);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  try {
    for (const address of addresses) {
      const names = await Promise.race([dns.reverse(address).catch(() => [] as string[]), timeout]);
      if (names === undefined) return undefined;
      for (const name of names) {
        const container = name.split('.')[0] ?? '';
        const match = new RegExp(`[_-]${service}[_-](\\d{1,5})$`).exec(container);
        if (match) return `${service}_${match[1]}`;
      }
    }
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** SUPERPEER_ID when set; else `sp-superpeer_<n>` in compose (stable across recreate); else the config's default. */
export async function superpeerIdFor(
  env: Record<string, string | undefined>,
  configured: string,
): Promise<string> {
  if (env.SUPERPEER_ID?.trim()) return configured;
  const replica = await composeReplicaName('superpeer');
  return replica === undefined ? configured : `sp-${replica}`;
}

/** PEER_NAME when set; else `peer_<n>` in compose; else none. */
export async function peerNameFor(configured: string | undefined): Promise<string | undefined> {
  return configured ?? (await composeReplicaName('peer'));
}
