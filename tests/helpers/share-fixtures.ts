import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { Share, type ShareOptions } from '../../libs/share/index.js';

/**
 * Temp directories and shares for one test file, all removed and closed after it. Shares start with the
 * periodic rescan off unless a test asks for it: changes must come from the watcher.
 */
export function shareFixtures(label: string) {
  const tempDirs: string[] = [];
  const shares: Share[] = [];
  after(async () => {
    await Promise.all(shares.map((share) => share.close()));
    await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  const newShare = (dir: string, options: Partial<ShareOptions> = {}): Share => {
    const share = new Share({ dir, rescanIntervalMs: 0, ...options });
    shares.push(share);
    return share;
  };

  return {
    async tempDir(): Promise<string> {
      const dir = await mkdtemp(path.join(os.tmpdir(), `p2p-${label}-`));
      tempDirs.push(dir);
      return dir;
    },
    /** Writes `name` (slash-separated, directories created) under `root`. */
    async put(root: string, name: string, content: string | Buffer): Promise<void> {
      const file = path.join(root, ...name.split('/'));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, content);
    },
    newShare,
    /** A started share whose first hashing is done. */
    async startShare(dir: string, options: Partial<ShareOptions> = {}): Promise<Share> {
      const share = newShare(dir, options);
      await share.start();
      await share.hashed();
      return share;
    },
  };
}
