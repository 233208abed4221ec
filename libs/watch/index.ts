export { SeenSet } from './seen.js';
export type { WatchEvents, WatcherOptions } from './watcher.js';
export { Watch, Watcher } from './watcher.js';
