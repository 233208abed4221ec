export type {
  DownloadFailure,
  DownloadFailureCode,
  DownloadOptions,
  DownloadProgress,
  DownloadResult,
  DownloadSource,
} from './download.js';
export { downloadFile } from './download.js';
export type { RequestedName } from './names.js';
export { nameFromSegments } from './names.js';
export type { Piece, Segment, SegmentPlanOptions } from './parallel.js';
export { SegmentPlan } from './parallel.js';
export type { AdvertisedVersion, FilesRouterOptions, SharedFileSource, TransferInfo } from './router.js';
export { createFilesRouter } from './router.js';
export type { HttpServerOptions, RunningHttpServer } from './server.js';
export { startHttpServer } from './server.js';
