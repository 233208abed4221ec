export type {
  DownloadFailure,
  DownloadFailureCode,
  DownloadOptions,
  DownloadProgress,
  DownloadResult,
  DownloadSource,
  DownloadWait,
  ResumeEvent,
} from './download.js';
export { downloadFile } from './download.js';
export type { AnswerHead, WholeVerdict } from './download-checks.js';
export {
  busyBackoffMs,
  checkRangeAnswer,
  checkWholeAnswer,
  parseContentRange,
  parseRetryAfterMs,
} from './download-checks.js';
export type {
  Holder,
  HoldersDownloadOptions,
  HoldersDownloadResult,
  RejectedGroup,
  SizeGroup,
  SizeGroupEvent,
} from './download-holders.js';
export { downloadFromHolders, groupHoldersBySize } from './download-holders.js';
export { tempFileName } from './download-temp.js';
export { HashWorker, type HashWorkerOptions } from './hash-worker.js';
export type { HeadParse, ResponseHead } from './http-head.js';
export { bodyFraming, MAX_HEAD_BYTES, parseResponseHead } from './http-head.js';
export type { Piece, Segment, SegmentPlanOptions } from './parallel.js';
export { SegmentPlan } from './parallel.js';
export { PrefixHasher } from './prefix-hash.js';
export { ReadSlabs, type SlabReader } from './read-slabs.js';
