/** Process helpers of `npm run bench:download`: timing a command (wall and CPU) and a throwaway nginx. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';

export const HOST = '127.0.0.1';
export const FILE_NAME = 'bench.bin';

const TIME_BIN = '/usr/bin/time';
const hasTimeBin = ((): boolean => {
  try {
    return statSync(TIME_BIN).isFile();
  } catch {
    return false;
  }
})();

/**
 * Runs a command to completion: its wall time in seconds, and its CPU time (user + system, NaN without
 * /usr/bin/time).
 */
export async function timed(
  command: string,
  args: string[],
  cpuFile: string,
): Promise<{ seconds: number; cpuSeconds: number; stdout: string }> {
  const started = performance.now();
  const child = hasTimeBin
    ? spawn(TIME_BIN, ['-f', '%U %S', '-o', cpuFile, command, ...args], {
        stdio: ['ignore', 'pipe', 'inherit'],
      })
    : spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`${command} ${args.slice(0, 2).join(' ')} exited with ${code}`);
  let cpuSeconds = Number.NaN;
  if (hasTimeBin) {
    const [user, system] = (await fs.readFile(cpuFile, 'utf8')).trim().split(/\s+/).map(Number);
    cpuSeconds = (user ?? Number.NaN) + (system ?? Number.NaN);
  }
  return { seconds, cpuSeconds, stdout };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, HOST);
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** nginx from Debian's package, in the foreground, serving `root` on a free port; undefined when absent. */
export async function startNginx(
  tmp: string,
  root: string,
): Promise<{ port: number; stop(): Promise<void> } | undefined> {
  const binary = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((candidate) => {
    try {
      return statSync(candidate).isFile();
    } catch {
      return false;
    }
  });
  if (binary === undefined) return undefined;
  const prefix = path.join(tmp, 'nginx');
  await fs.mkdir(prefix);
  const port = await freePort();
  const conf = path.join(prefix, 'nginx.conf');
  await fs.writeFile(
    conf,
    `worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server { listen ${HOST}:${port}; root ${root}; }
}
`,
  );
  const child = spawn(binary, ['-p', prefix, '-c', conf, '-g', 'daemon off;'], { stdio: 'inherit' });
  const url = `http://${HOST}:${port}/${FILE_NAME}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(url, { method: 'HEAD' }).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) break;
    if (i > 100 || child.exitCode !== null) throw new Error('nginx did not start');
    await delay(50);
  }
  return {
    port,
    async stop() {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
