export { writeDemoFiles } from './demo.js';
export type { FileVersion } from './hash.js';
export { openRegularFile, sha256File, UnsafeFileError } from './hash.js';
export { HASH_CACHE_FILE_NAME, STATE_DIR_NAME } from './hash-cache.js';
export type { PeerIdentity } from './identity.js';
export { IDENTITY_FILE_NAME, loadOrCreateIdentity, signBody, verifyBody } from './identity.js';
export type { WalkHooks } from './scanner.js';
export type { ShareChange, SharedFile, ShareEvents, ShareOptions } from './share.js';
export { Share } from './share.js';
