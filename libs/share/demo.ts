import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const SAMPLE_BYTES = 256 * 1024;

/**
 * Identical bytes on every peer, hence the same sha256 everywhere: a download of it can draw on several
 * sources at once.
 */
const NETWORK_GUIDE = `P2P network guide
=================

Every peer shares one directory. Peers publish their file lists to a superpeer over RabbitMQ; the superpeer
keeps an index and answers searches. File bytes move directly between peers over HTTP and are verified by
their SHA-256, so any peer holding the same bytes can serve them.

This file has the same content on every peer that wrote the demo files, so its hash is the same everywhere
and a download can use several sources.
`;

/**
 * Writes a few small demo files into `dir` if it shares nothing yet (dot folders such as `.p2p/` do not count)
 * and returns their names; returns [] and writes nothing otherwise. `peerLabel` becomes part of the names,
 * with anything but letters, digits, `_` and `-` replaced by `-`.
 */
export async function writeDemoFiles(dir: string, peerLabel: string): Promise<string[]> {
  const root = path.resolve(dir);
  await mkdir(root, { recursive: true });
  if (await hasVisibleFile(root)) return [];

  const label = peerLabel.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64) || 'peer';
  const files: [string, string | Buffer][] = [
    [
      `welcome-${label}.txt`,
      `Welcome to the share of ${label}.\nEverything in this folder (except dot files) is visible to the network.\n`,
    ],
    [
      `notes/${label}-readme.md`,
      `# Notes of ${label}\n\n- Drop files into the share folder; they are announced within seconds.\n- Names starting with a dot stay private.\n`,
    ],
    [`data/${label}-sample.bin`, pseudoRandomBytes(`sample:${label}`, SAMPLE_BYTES)],
    ['common/network-guide.txt', NETWORK_GUIDE],
  ];
  const written: string[] = [];
  for (const [name, content] of files) {
    const absPath = path.join(root, ...name.split('/'));
    await mkdir(path.dirname(absPath), { recursive: true });
    try {
      // 'wx': never clobber a file someone put there meanwhile.
      await writeFile(absPath, content, { flag: 'wx' });
      written.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return written;
}

/** Deterministic per seed, so a peer's sample is the same across runs yet differs between peers. */
function pseudoRandomBytes(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let offset = 0, counter = 0; offset < length; counter++) {
    const block = createHash('sha256').update(`${seed}:${counter}`).digest();
    offset += block.copy(out, offset);
  }
  return out;
}

/** True if the share already holds anything it would share: a regular file outside dot folders. */
async function hasVisibleFile(root: string): Promise<boolean> {
  const dirs = [root];
  while (dirs.length > 0) {
    const dir = dirs.pop() as string;
    for (const dirent of await readdir(dir, { withFileTypes: true })) {
      if (dirent.name.startsWith('.')) continue;
      if (dirent.isFile()) return true;
      if (dirent.isDirectory()) dirs.push(path.join(dir, dirent.name));
    }
  }
  return false;
}
