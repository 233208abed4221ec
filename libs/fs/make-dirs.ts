import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

/**
 * Creates `dir` and its missing parents, one level at a time, as `mkdir -p` does. Not Node's
 * `mkdir(dir, { recursive: true })`: where a parent exists but refuses a new entry with ENOENT (under
 * /proc, say), Node 20's recursive mkdir never returns and spins a core (`p2p get --out /proc/x`, a share
 * directory there). Throws the failing level's error (ENOENT, EACCES, ENOTDIR…). The loop is bounded by
 * the path's depth.
 */
export function makeDirs(dir: string, mode?: number): void {
  const missing: string[] = [];
  for (let at = path.resolve(dir); !existsSync(at); at = path.dirname(at)) {
    missing.push(at);
    if (path.dirname(at) === at) break;
  }
  for (const level of missing.reverse()) {
    try {
      mkdirSync(level, mode === undefined ? undefined : { mode });
    } catch (err) {
      // Made meanwhile by someone else: fine if it is a directory (the next level, or the caller, finds out).
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
