/**
 * The download half of `p2p get`: the output directory checked before anything is asked of the network,
 * the download itself with its progress, busy waits and Ctrl-C, and one line saying how it ended.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import { describeError, isP2PError, P2PError } from '../../libs/errors/index.js';
import { makeDirs } from '../../libs/fs/index.js';
import { displayText } from '../../libs/protocol/index.js';
import {
  downloadFromHolders,
  type Holder,
  type SizeGroup,
  type SizeGroupEvent,
} from '../../libs/transfer/index.js';

/**
 * `--out` as an existing, writable directory (created, parents included, when missing). Anything else is
 * a `USAGE` error with one line naming the problem: it is the command line that must change.
 */
export function prepareOutDir(out: string): string {
  const dir = path.resolve(out);
  let stats: fs.Stats | undefined;
  try {
    stats = fs.statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw outError(dir, 'cannot be created', err);
    if (code !== 'ENOENT') throw outError(dir, 'cannot be read', err);
  }
  if (stats !== undefined && !stats.isDirectory())
    throw new P2PError('USAGE', `--out ${dir} is not a directory`, { details: { path: dir } });
  if (stats === undefined) {
    try {
      makeDirs(dir);
    } catch (err) {
      throw outError(dir, 'cannot be created', err);
    }
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw outError(dir, 'is not writable', err);
  }
  return dir;
}

function outError(dir: string, what: string, err: unknown): P2PError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOTDIR'
      ? 'a part of the path is a file'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EROFS'
          ? 'read-only file system'
          : (code ?? String(err));
  return new P2PError('USAGE', `--out ${dir} ${what} (${reason})`, {
    cause: err,
    details: { path: dir, code },
  });
}

export interface GetDownload {
  /** Every holder found, with the size each claims (see `downloadFromHolders`). */
  holders: Holder[];
  sha256: string;
  destPath: string;
  /** Total time the download may wait for busy sources. */
  busyWaitMs: number;
  formatBytes: (bytes: number) => string;
}

/** At most this many holders are named in a line; the others are counted. */
const PEERS_NAMED = 3;

function holderCount(group: SizeGroup): string {
  return `${group.sources.length} holder${group.sources.length === 1 ? '' : 's'}`;
}

/**
 * The lines saying which claimed size is tried and why one was given up, when holders disagree on the size
 * (a holder may lie about it); nothing when they agree.
 */
function sizeLines(event: SizeGroupEvent, formatBytes: (bytes: number) => string): string {
  const { groups, group, index } = event;
  if (groups.length < 2) return '';
  const size = formatBytes(group.sizeBytes);
  // The last size's failure is the error `get` ends with: said once, there.
  if (event.kind === 'failed')
    return index + 1 < groups.length
      ? `warning: the ${group.sources.length === 1 ? 'holder' : holderCount(group)} claiming ${size} could not deliver the file: ${describeError(event.error)}\n`
      : '';
  const ids = group.sources.map((source) => source.peerId.slice(0, 12));
  const more = ids.length > PEERS_NAMED ? ` and ${ids.length - PEERS_NAMED} more` : '';
  const claim = `${holderCount(group)} claim${ids.length === 1 ? 's' : ''}`;
  const tried = `trying ${size}: ${claim} it (${ids.slice(0, PEERS_NAMED).join(', ')}${more})\n`;
  if (index > 0) return tried;
  const sizes = groups.map((g) => `${formatBytes(g.sizeBytes)} (${holderCount(g)})`).join(', ');
  return `the holders disagree on the size: ${sizes}; trying each in turn\n${tried}`;
}

/**
 * Runs the download with a progress bar on a terminal and a line per busy wait. Ctrl-C (SIGINT) or SIGTERM
 * aborts it cleanly and resolves 'interrupted' (the caller exits 130, the shell's status for SIGINT): what
 * was downloaded in order is kept as a hidden prefix that the same `get` later resumes from (see
 * `DownloadOptions.resume`), anything else is removed.
 */
export async function runDownload(get: GetDownload): Promise<'done' | 'interrupted'> {
  const { holders, sha256, destPath } = get;
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => interrupt.abort(new Error(`interrupted by ${signal}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const bar = process.stderr.isTTY
    ? new SingleBar({ format: ' {bar} {percentage}% | {value}/{total} bytes | {peer}', hideCursor: true })
    : undefined;
  let keptBytes = 0;
  try {
    const result = await downloadFromHolders({
      holders,
      sha256,
      destPath,
      busyWaitMs: get.busyWaitMs,
      signal: interrupt.signal,
      resume: true,
      onResume: (event) => {
        if (event.kind === 'kept') keptBytes = event.bytes;
        else process.stderr.write(`resuming: ${get.formatBytes(event.bytes)} already here from before\n`);
      },
      onGroup: (event) => {
        // A kept prefix belongs to the size being tried: one kept before is gone once another size starts.
        if (event.kind === 'trying') keptBytes = 0;
        bar?.stop();
        const lines = sizeLines(event, get.formatBytes);
        if (lines !== '') process.stderr.write(lines);
        if (event.kind === 'trying')
          bar?.start(event.group.sizeBytes, 0, { peer: `from ${event.group.sources[0]?.peerId ?? ''}` });
      },
      onProgress: (progress) => bar?.update(progress.receivedBytes, { peer: `from ${progress.peerId}` }),
      onWait: (wait) => {
        const line = `peer ${wait.peerId} is busy; asking again in ${(wait.waitMs / 1000).toFixed(1)} s`;
        if (bar) bar.update({ peer: line });
        else process.stderr.write(`${line}\n`);
      },
    });
    bar?.stop();
    for (const peerId of result.badSources)
      process.stderr.write(`warning: peer ${peerId} served bytes that fail the SHA-256 check\n`);
    const what = `${get.formatBytes(result.size)}, sha256 ${result.sha256} verified`;
    process.stdout.write(
      result.alreadyPresent
        ? `already present: ${displayText(result.path)} (${what}); nothing downloaded\n`
        : `saved ${displayText(result.path)} (${what}, from ${result.servedBy.join(', ')})\n`,
    );
    return 'done';
  } catch (err) {
    bar?.stop();
    if (interrupt.signal.aborted) {
      process.stderr.write(
        keptBytes > 0
          ? `p2p: interrupted; ${get.formatBytes(keptBytes)} kept: the same get resumes from there\n`
          : 'p2p: interrupted; the partial download was removed\n',
      );
      return 'interrupted';
    }
    if (isP2PError(err, 'IO_ERROR') && err.details.reason === 'exists')
      throw new P2PError(
        'USAGE',
        `${destPath} already exists with other content; remove it or choose another --out`,
        {
          cause: err,
          details: { path: destPath },
        },
      );
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
