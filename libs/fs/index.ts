export { makeDirs } from './make-dirs.js';
