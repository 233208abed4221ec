import path from 'node:path';
import { type ErrorCode, isP2PError, P2PError } from '../errors/index.js';
import {
  DEFAULT_BUSY_WAIT_MS,
  type DownloadOptions,
  type DownloadResult,
  type DownloadSource,
  downloadFile,
} from './download.js';
import type { DownloadFailure } from './download-failure.js';
import { keptFile } from './download-resume.js';

/** A peer that lists the file: where to get it, and the size it says the file has (a claim, not a fact). */
export interface Holder extends DownloadSource {
  size: number;
}

/** The holders that claim one size: one source per peer, in the order they were first listed. */
export interface SizeGroup {
  sizeBytes: number;
  sources: DownloadSource[];
}

/** A size tried in vain, and why. */
export interface RejectedGroup {
  sizeBytes: number;
  peerIds: string[];
  code: ErrorCode;
  message: string;
}

export type SizeGroupEvent =
  /** The download of `group` starts. */
  | { kind: 'trying'; group: SizeGroup; index: number; groups: readonly SizeGroup[] }
  /** It failed for a reason a lying holder can cause; the next group, if any, is tried. */
  | { kind: 'failed'; group: SizeGroup; index: number; groups: readonly SizeGroup[]; error: P2PError };

export interface HoldersDownloadOptions extends Omit<DownloadOptions, 'sources' | 'size'> {
  /** Every holder of `sha256` found (a peer may be listed more than once). */
  holders: readonly Holder[];
  /** Told as each size is tried, and when one is given up. */
  onGroup?: (event: SizeGroupEvent) => void;
}

export interface HoldersDownloadResult extends DownloadResult {
  /** The sizes tried before the one that verified, in order (empty when holders agree). */
  rejected: RejectedGroup[];
}

/** The SHA-256 of no bytes: the only content of size 0, and no other size has it. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Errors of the system that a size too large for the disk causes (the disk would take the true size). */
const SIZE_ERRNOS = new Set(['EFBIG', 'ENOSPC', 'EDQUOT']);
/** Groups named in the error when every one failed; the rest are counted. */
const MAX_GROUPS_NAMED = 5;

/**
 * The holders grouped by the size they claim, in the order to try them: most holders first, a tie to the
 * smaller size (a liar's smaller claim costs at most that many bytes before the SHA-256 refutes it; a
 * larger one is never fetched before the smaller). Claims that cannot be true are dropped: a size that is
 * not a safe integer, and 0 for any hash but the empty content's (or another size for that one).
 */
export function groupHoldersBySize(sha256: string, holders: readonly Holder[]): SizeGroup[] {
  const bySize = new Map<number, Map<string, DownloadSource>>();
  for (const holder of holders) {
    const { size } = holder;
    if (!Number.isSafeInteger(size) || size < 0 || (size === 0) !== (sha256 === EMPTY_SHA256)) continue;
    let peers = bySize.get(size);
    if (peers === undefined) {
      peers = new Map();
      bySize.set(size, peers);
    }
    if (!peers.has(holder.peerId)) peers.set(holder.peerId, { url: holder.url, peerId: holder.peerId });
  }
  return [...bySize]
    .map(([sizeBytes, peers]) => ({ sizeBytes, sources: [...peers.values()] }))
    .sort((x, y) => y.sources.length - x.sources.length || x.sizeBytes - y.sizeBytes);
}

/**
 * Downloads the file with `sha256` from holders whose size claims may disagree. Anyone can list any hash
 * with any size, so a size is only a claim: the holders are grouped by the size they claim
 * (`groupHoldersBySize`) and each group is a download of its own (`downloadFile`, with that size and only
 * those holders), tried in turn until one verifies. A group is given up, and the next tried, when it fails
 * for a reason its holders can cause: HASH_MISMATCH, DOWNLOAD_FAILED (unreachable, SIZE_MISMATCH, busy…),
 * or IO_ERROR that the claimed size causes (EFBIG, ENOSPC, EDQUOT) or that the destination holds other
 * content than that size (it may hold this very file, of the true size). Any other error, or an abort,
 * ends the download at once.
 *
 * Nothing on disk is sized by a claim: a download's temp file only ever holds bytes received, and is
 * removed when its group fails. With `resume`, a group that fails keeps its prefix as `downloadFile` does,
 * and the next group's download removes it (another size); a prefix kept from an earlier run puts its size's
 * group first, so that a liar's group cannot discard it.
 *
 * All groups share one `busyWaitMs` (counted from the start). Throws `NO_SOURCES` when no holder claims a
 * possible size; with one group, that download's error as is; when every group failed, the first group's
 * error if all were the destination existing (IO_ERROR, `details.reason` 'exists'), otherwise one error
 * naming each size (HASH_MISMATCH if every group ended so, IO_ERROR if every group did, else
 * DOWNLOAD_FAILED) whose `details` carry every group's `failures` and `badSources` and the `groups`.
 */
export async function downloadFromHolders(options: HoldersDownloadOptions): Promise<HoldersDownloadResult> {
  const { holders, onGroup, ...download } = options;
  const { sha256, signal } = options;
  const groups = groupHoldersBySize(sha256, holders);
  if (groups.length === 0)
    throw new P2PError('NO_SOURCES', 'no peer offers this file', {
      details: { sha256, failures: [], claimedSizes: [...new Set(holders.map((h) => h.size))].slice(0, 10) },
    });
  if (options.resume === true) await keptFirst(groups, sha256, options.destPath);
  const deadlineMs = Date.now() + (options.busyWaitMs ?? DEFAULT_BUSY_WAIT_MS);
  const tell = (event: SizeGroupEvent): void => {
    try {
      onGroup?.(event);
    } catch {
      // A listener's fault is not the download's.
    }
  };

  const rejected: Array<RejectedGroup & { error: P2PError }> = [];
  for (const [index, group] of groups.entries()) {
    signal?.throwIfAborted();
    tell({ kind: 'trying', group, index, groups });
    try {
      const result = await downloadFile({
        ...download,
        sources: group.sources,
        size: group.sizeBytes,
        busyWaitMs: Math.max(0, deadlineMs - Date.now()),
      });
      return {
        ...result,
        failures: [...rejected.flatMap((r) => failuresOf(r.error)), ...result.failures],
        badSources: [...new Set([...rejected.flatMap((r) => badSourcesOf(r.error)), ...result.badSources])],
        rejected: rejected.map(({ error: _error, ...rest }) => rest),
      };
    } catch (err) {
      if (signal?.aborted || groups.length === 1 || !isP2PError(err) || !aHolderMayCause(err)) throw err;
      const peerIds = group.sources.map((s) => s.peerId);
      rejected.push({
        sizeBytes: group.sizeBytes,
        peerIds,
        code: err.code,
        message: err.message,
        error: err,
      });
      tell({ kind: 'failed', group, index, groups, error: err });
    }
  }
  throw finalError(sha256, rejected);
}

function aHolderMayCause(err: P2PError): boolean {
  if (err.code === 'HASH_MISMATCH' || err.code === 'DOWNLOAD_FAILED') return true;
  if (err.code !== 'IO_ERROR') return false;
  const errno = err.details.code;
  return err.details.reason === 'exists' || (typeof errno === 'string' && SIZE_ERRNOS.has(errno));
}

/** Moves the group of the size a kept prefix of this file was downloaded with (if any) to the front. */
async function keptFirst(groups: SizeGroup[], sha256: string, destPath: string): Promise<void> {
  const kept = await keptFile(path.resolve(destPath));
  if (kept === undefined || kept.sha256 !== sha256) return;
  const at = groups.findIndex((group) => group.sizeBytes === kept.size);
  if (at > 0) groups.unshift(...groups.splice(at, 1));
}

function failuresOf(err: P2PError): DownloadFailure[] {
  const failures = err.details.failures;
  return Array.isArray(failures) ? (failures as DownloadFailure[]) : [];
}

function badSourcesOf(err: P2PError): string[] {
  const bad = err.details.badSources;
  return Array.isArray(bad) ? (bad as string[]) : [];
}

function finalError(sha256: string, rejected: Array<RejectedGroup & { error: P2PError }>): P2PError {
  const first = rejected[0];
  if (
    first !== undefined &&
    rejected.every((r) => r.error.code === 'IO_ERROR' && r.error.details.reason === 'exists')
  )
    return first.error;
  const code: ErrorCode = rejected.every((r) => r.code === 'HASH_MISMATCH')
    ? 'HASH_MISMATCH'
    : rejected.every((r) => r.code === 'IO_ERROR')
      ? 'IO_ERROR'
      : 'DOWNLOAD_FAILED';
  const named = rejected.slice(0, MAX_GROUPS_NAMED).map((r) => {
    const holders = `${r.peerIds.length} holder${r.peerIds.length === 1 ? '' : 's'}`;
    return `${r.sizeBytes} bytes (${holders}): ${r.message}`;
  });
  const more = rejected.length - named.length;
  return new P2PError(
    code,
    `the holders claim ${rejected.length} sizes and none delivered the file: ${named.join('; ')}${more > 0 ? `; and ${more} more` : ''}`,
    {
      details: {
        sha256,
        groups: rejected.map(({ error: _error, ...rest }) => rest),
        failures: rejected.flatMap((r) => failuresOf(r.error)),
        badSources: [...new Set(rejected.flatMap((r) => badSourcesOf(r.error)))],
      },
    },
  );
}
