export type { PeerIdentity } from './identity-file.js';
export { IDENTITY_FILE_NAME, loadOrCreateIdentity, STATE_DIR_NAME } from './identity-file.js';
export { signBody, verifyBody } from './signature.js';
