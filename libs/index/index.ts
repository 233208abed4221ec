export type { TokenDictionaryOptions, TokenPostings } from './dictionary.js';
export { TokenDictionary } from './dictionary.js';
export type { DeltaResult, FullResult, IndexedPeer, PeerDeltaInput, PeerState } from './network-index.js';
export { NetworkIndex } from './network-index.js';
export type { Query } from './query.js';
export { parseQuery, tokenize } from './query.js';
