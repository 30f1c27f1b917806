// Kept only for src/explain, which imports KeyRegistry and KeySource from here; its imports move to
// `./index.js` with the explain work, and then this file goes. Keys live in jwks-fetch, key-set, key-store and
// key-registry.
export { KeyRegistry } from './key-registry.js';
export type { KeySource } from './key-store.js';
