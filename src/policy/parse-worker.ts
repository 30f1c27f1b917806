// The worker thread of loadPolicyFileOffThread: parses and validates one policy text, posts the result (plain
// data: the document or its problems) and ends.
import { parentPort, workerData } from 'node:worker_threads';
import { readPolicyDocument } from './load.js';

const { text, file } = workerData as { text: string; file: string };
parentPort?.postMessage(readPolicyDocument(text, file));
