import path from 'node:path';
import { type FSWatcher, watch } from 'chokidar';

/**
 * Watches the share and reports each touched path relative to `root` ('/' separators). Dot segments (the
 * peer's state, partial downloads) are not watched. `ready` resolves once the watcher has walked the tree
 * (which takes a while for a big share: callers need not wait for it), or at once on abort.
 */
export function watchShare(
  root: string,
  signal: AbortSignal,
  handlers: { onPath: (rel: string) => void; onError: (err: Error) => void },
): { watcher: FSWatcher; ready: Promise<void> } {
  const watcher = watch(root, {
    ignoreInitial: true,
    followSymlinks: false,
    // Stability is checked around hashing instead (hashIfStable + QuietTracker).
    awaitWriteFinish: false,
    ignored: (p: string) => isIgnored(root, p),
  });
  watcher.on('all', (_event, absPath) => {
    const rel = path.relative(root, absPath);
    if (path.isAbsolute(rel) || rel.startsWith('..')) return;
    handlers.onPath(rel.split(path.sep).join('/'));
  });
  watcher.on('error', (err) => handlers.onError(err instanceof Error ? err : new Error(String(err))));
  const ready = new Promise<void>((resolve) => {
    watcher.once('ready', resolve);
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  return { watcher, ready };
}

function isIgnored(root: string, absPath: string): boolean {
  const rel = path.relative(root, absPath);
  // Paths outside the root begin with '..', which the dot-segment rule already rejects.
  return rel !== '' && rel.split(path.sep).some((segment) => segment.startsWith('.'));
}
