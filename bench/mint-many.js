// Many real, distinct tokens fast, for benches that must defeat caches (bench/check-load.js, bench/compare.js):
// worker threads sign with node:crypto and build the compact JWS by hand (the same bytes jose would sign), each
// token the given claims plus iat, exp and a distinct jti ("bench-<n>").
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const MINT_WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { createPrivateKey, sign } = require('node:crypto');
const { jwk, alg, kid, claims, from, to, exp } = workerData;
const key = createPrivateKey({ key: jwk, format: 'jwk' });
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const header = b64({ alg, kid, typ: 'JWT' });
const iat = Math.floor(Date.now() / 1000);
const out = [];
for (let n = from; n < to; n++) {
  const input = header + '.' + b64({ ...claims, iat, exp, jti: 'bench-' + n });
  const signature = alg === 'ES256'
    ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
    : sign('sha256', Buffer.from(input), key);
  out.push(input + '.' + signature.toString('base64url'));
}
parentPort.postMessage(out.join('\\n'));
`;

/**
 * Tokens `from`..`to` (jti bench-<from> … bench-<to - 1>) for `claims`, signed with the private `jwk` (RS256 or
 * ES256, header kid `kid`), expiring at `exp` (seconds), in parallel by one worker per core (at most 8).
 */
export async function mintMany({ jwk, alg, kid, claims, from, to, exp }) {
  const workers = Math.max(1, Math.min(availableParallelism(), 8));
  const per = Math.ceil((to - from) / workers);
  const parts = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const start = from + w * per;
      const end = Math.min(to, start + per);
      if (start >= end) return Promise.resolve('');
      return new Promise((resolve, reject) => {
        const worker = new Worker(MINT_WORKER, {
          eval: true,
          workerData: { jwk, alg, kid, claims, from: start, to: end, exp },
        });
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    }),
  );
  return parts.filter(Boolean).join('\n').split('\n');
}
