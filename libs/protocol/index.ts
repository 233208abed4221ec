export type { AssembleResult, AssemblerLimits, ChunkPart } from './assembler.js';
export { ChunkAssembler, DEFAULT_ASSEMBLER_LIMITS } from './assembler.js';
export {
  decodeWithFileList,
  decodeWithFileLists,
  EACH_PEERS_FILES,
  type FileListHolders,
  type FileListOptions,
  TOP_LEVEL_FILES,
  type WithFileList,
  type WithFileLists,
} from './canonical-files.js';
export type { DecodeResult } from './codec.js';
export { decode, encode, encodeWithField } from './codec.js';
export type { FileEntry } from './common.js';
export {
  chunk,
  ErrorBodySchema,
  ed25519PublicKeyBytes,
  FileEntrySchema,
  FileListSchema,
  FileNameListSchema,
  FileNameSchema,
  fileUrl,
  HttpUrlSchema,
  InstanceIdSchema,
  MAX_FILES_PER_MESSAGE,
  MAX_MESSAGE_BYTES,
  NodeNameSchema,
  PEER_ID_HASH_BYTES,
  PeerIdSchema,
  PROTOCOL_VERSION,
  PublicKeySchema,
  peerIdFromPublicKey,
  peerIdMatchesKey,
  SeqSchema,
  Sha256Schema,
  VersionSchema,
} from './common.js';
export { displayText } from './display.js';
export type { PeerAnnounce, PeerDelta, PeerHeartbeat, PeerLeave } from './events.js';
export {
  PeerAnnounceFieldsSchema,
  PeerAnnounceSchema,
  PeerDeltaSchema,
  PeerHeartbeatSchema,
  PeerLeaveSchema,
  peerEvent,
} from './events.js';
export { readFileList } from './file-list-reader.js';
export { MAX_JSON_DEPTH, nestsDeeperThan } from './json-depth.js';
export type { TopologyNames } from './names.js';
export { DEAD_LETTER_BODY_BYTES, HEADERS, NamespaceSchemaPattern, topologyNames } from './names.js';
export type {
  NetworkPeerDelta,
  NetworkPeerLeft,
  NetworkPeerState,
  NetworkResyncRequest,
  NetworkTick,
} from './network.js';
export {
  NetworkPeerDeltaSchema,
  NetworkPeerLeftSchema,
  NetworkPeerStateSchema,
  NetworkResyncRequestSchema,
  NetworkTickSchema,
} from './network.js';
export { concatPacked, namesDistinct, PackedFiles, packFiles } from './packed-files.js';
export type { AnswerSource, ListedPeer, PeerApiError, PeerListAnswer, PeerSearchAnswer } from './peer-api.js';
export {
  AnswerSourceSchema,
  collectPeerPages,
  ListedPeerSchema,
  MAX_PEERS_PAGES,
  PEER_LIST_FROM_SUPERPEER,
  PeerApiErrorSchema,
  PeerListAnswerSchema,
  PeerSearchAnswerSchema,
} from './peer-api.js';
export type {
  ErrorReply,
  PeerSummary,
  PeersReply,
  PeersRequest,
  RpcReply,
  RpcRequest,
  SearchReply,
  SearchRequest,
  SearchResult,
  SnapshotPeer,
  SnapshotReply,
  SnapshotRequest,
} from './rpc.js';
export {
  DEFAULT_SEARCH_LIMIT,
  ErrorReplySchema,
  MAX_PEERS_PER_PAGE,
  MAX_RPC_REQUEST_BYTES,
  MAX_SEARCH_LIMIT,
  PeerSummarySchema,
  PeersReplySchema,
  PeersRequestSchema,
  RpcReplySchema,
  RpcRequestSchema,
  SearchReplySchema,
  SearchRequestSchema,
  SearchResultSchema,
  SnapshotPeerSchema,
  SnapshotReplySchema,
  SnapshotRequestSchema,
} from './rpc.js';
export type { NetworkMessage, PeerEvent, WatchNotice } from './streams.js';
export { NetworkMessageSchema, PeerEventSchema, WatchNoticeSchema } from './streams.js';
export type {
  BindingSpec,
  ExchangeSpec,
  QueueSpec,
  SharedQueueType,
  SharedTopologyOptions,
  TopologySpec,
} from './topology.js';
export {
  DEAD_LETTER_MAX_MESSAGES,
  followerQueue,
  LIVENESS_ROUTING_KEYS,
  livenessTopology,
  mergeTopology,
  sharedTopology,
} from './topology.js';
export type {
  WatchAccepted,
  WatchCancel,
  WatchControl,
  WatchMatch,
  WatchOverflow,
  WatchRefused,
  WatchRegister,
  WatchResyncRequest,
} from './watch.js';
export {
  DEFAULT_WATCH_LEASE_MS,
  MAX_WATCH_LEASE_MS,
  MAX_WATCH_QUERY_LENGTH,
  MIN_WATCH_LEASE_MS,
  superpeerWatchQueueName,
  WatchAcceptedSchema,
  WatchCancelSchema,
  WatchControlSchema,
  WatchIdSchema,
  WatchMatchSchema,
  WatchOverflowSchema,
  WatchQueueSchema,
  WatchRefusedSchema,
  WatchRegisterSchema,
  WatchResyncRequestSchema,
  watcherQueueName,
} from './watch.js';
