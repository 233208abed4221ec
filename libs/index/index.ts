export { clearBit, forEachBit, hasBit, setBit, wordsFor } from './bitmap.js';
export type { TokenDictionaryOptions, TokenPostings } from './dictionary.js';
export { TokenDictionary } from './dictionary.js';
export type { NetworkIndexOptions } from './network-index.js';
export { NetworkIndex } from './network-index.js';
export type { NetworkMapOptions } from './network-map.js';
export { NetworkMap } from './network-map.js';
export type {
  DeltaResult,
  FullResult,
  IndexedPeer,
  PeerDeltaInput,
  PeerState,
  SearchOutcome,
} from './peer-table.js';
export type { Query } from './query.js';
export { parseQuery, tokenize } from './query.js';
export type { SliceOptions } from './slices.js';
export { forEachSliced, runSliced, SerialQueue } from './slices.js';
