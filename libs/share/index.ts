export { writeDemoFiles } from './demo.js';
export type { FileVersion } from './hash.js';
export { openRegularFile, sha256File, UnsafeFileError } from './hash.js';
export { HASH_CACHE_FILE_NAME } from './hash-cache.js';
export type { ShareOptions } from './options.js';
export type { WalkHooks } from './scanner.js';
export type { ShareChange, SharedFile, ShareEvents } from './share.js';
export { Share } from './share.js';
