// npm's `prepare`: builds dist/ unless it was built by this script after every source last changed.
//
// npm runs `prepare` after `npm ci` and `npm install`, and also whenever `npx p2p` (or `npm exec p2p`) is
// run in this directory for the first time: npm installs the project into its npx cache to find the `p2p`
// bin and prepares it there, which rebuilt everything (about 25 s here, beside a running network). Plain
// JavaScript: it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const stamp = path.join(root, 'dist', '.prepared');
/** What the build reads: the sources, the configuration and the dependencies' lock. */
const SOURCE_DIRS = ['libs', 'services', 'scripts', 'tests', 'bin'];
const SOURCE_FILES = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];

/** The newest modification time under `entry` (a file or a directory), or 0 when it does not exist. */
function newest(entry) {
  let stats;
  try {
    stats = lstatSync(entry); // a symbolic link is not followed: one pointing up would never end
  } catch {
    return 0;
  }
  if (!stats.isDirectory()) return stats.mtimeMs;
  let latest = stats.mtimeMs; // a file deleted or renamed changes its directory
  for (const name of readdirSync(entry)) latest = Math.max(latest, newest(path.join(entry, name)));
  return latest;
}

const sources = Math.max(
  ...SOURCE_DIRS.map((dir) => newest(path.join(root, dir))),
  ...SOURCE_FILES.map((file) => newest(path.join(root, file))),
);
if (existsSync(stamp) && statSync(stamp).mtimeMs >= sources) {
  process.stdout.write('prepare: dist/ is up to date (built after the last change to the sources)\n');
  process.exit(0);
}

// A source saved while the build runs is newer than the stamp: the stamp bears the build's start.
const started = new Date();
// npm sets npm_execpath for its scripts: the same npm runs the build.
const npm = process.env.npm_execpath;
const build = npm
  ? spawnSync(process.execPath, [npm, 'run', 'build'], { cwd: root, stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
writeFileSync(stamp, `${started.toISOString()}\n`);
utimesSync(stamp, started, started);
