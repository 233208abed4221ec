import { z } from 'zod';
import { P2PError } from '../errors/index.js';
import type { Log } from '../logging/index.js';
import type { WalkHooks } from './scanner.js';

export interface ShareOptions {
  /** Absolute or relative path of the shared directory; created if missing. */
  dir: string;
  /** Periodic full rescan as a safety net behind the watcher. Default 10_000. 0 disables. */
  rescanIntervalMs?: number;
  /**
   * Watch the tree for changes (chokidar). Default true. False leaves changes to the periodic rescan alone,
   * for file systems that send no change notifications (network mounts).
   */
  watch?: boolean;
  /** Quiet time after a watcher event before re-scanning the touched paths (coalesces bursts). Default 150. */
  debounceMs?: number;
  /** Files hashed at once. Default 2. */
  hashConcurrency?: number;
  /** A shared file that changed is re-hashed once its stat stayed unchanged this long. Default 500. */
  quietMs?: number;
  /** The quiet wait doubles while a file keeps changing, up to this. Default 4_000. */
  maxQuietMs?: number;
  /** While many files are hashed, what is done is announced at least this often. Default 1_000. */
  announceBatchMs?: number;
  /** Optional logger with warn/info/debug(message, meta) — winston-compatible; default: silent. */
  logger?: Log;
  /** Test seams (change the tree at an exact point of a walk). */
  hooks?: WalkHooks;
}

const OptionsSchema = z.object({
  dir: z.string().min(1),
  rescanIntervalMs: z.number().int().min(0).default(10_000),
  watch: z.boolean().default(true),
  debounceMs: z.number().int().min(0).default(150),
  hashConcurrency: z.number().int().min(1).max(64).default(2),
  quietMs: z.number().int().min(0).default(500),
  maxQuietMs: z.number().int().min(0).default(4_000),
  announceBatchMs: z.number().int().min(1).default(1_000),
});

/** `ShareOptions` checked, with every default filled in (logger and hooks are read from the options as given). */
export type ParsedShareOptions = z.infer<typeof OptionsSchema>;

/** Throws P2PError CONFIG_INVALID saying which option is wrong. */
export function parseShareOptions(options: ShareOptions): ParsedShareOptions {
  const parsed = OptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new P2PError('CONFIG_INVALID', `share options: ${z.prettifyError(parsed.error)}`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}
