export { readEnvFile, readSeedIni } from './files.js';
export type { CliConfig, CommonConfig, Env, PeerConfig, SuperpeerConfig } from './load.js';
export { loadCliConfig, loadPeerConfig, loadSuperpeerConfig } from './load.js';
export { CONFIG_KEYS, defaultSuperpeerId, LOG_FORMATS, LOG_LEVELS } from './schema.js';
