#!/usr/bin/env node
// Entry point for `npx scopegate` and `npm start`. On an unsupported Node.js it prints one line and exits 1
// before anything else is loaded: it imports only the version check, and has no top-level await, so even a
// Node.js too old for the rest of scopegate gets that far. Then bin/run.js runs the compiled CLI.
import { unsupportedNodeMessage } from './node-support.js';

const unsupported = unsupportedNodeMessage(process.versions.node);
if (unsupported !== undefined) {
  console.error(unsupported);
  process.exit(1);
}
import('./run.js');
