export { nameFromSegments, type RequestedName } from './names.js';
export type { AdvertisedVersion, FilesRouterOptions, SharedFileSource, TransferInfo } from './router.js';
export { createFilesRouter } from './router.js';
export type { HttpServerOptions, RunningHttpServer } from './server.js';
export { startHttpServer } from './server.js';
