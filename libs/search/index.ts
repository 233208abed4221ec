/**
 * The network's file index: `NetworkIndex` (the superpeer's searchable index), `NetworkMap` (a peer's
 * compact map of who has what), their update and result types, query parsing, the slicing helpers
 * their async updates use, and the binary search over sorted lists (also used by the superpeer's paging).
 * Everything else in this folder is internal storage.
 */
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
export { forEachSliced, runSliced, SerialQueue, turnSpent } from './slices.js';
export { lowerBoundBy } from './sorted.js';
