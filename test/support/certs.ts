// The tests' certificates for mTLS: src/dev/certs.ts (the demo makes its own the same way), with openssl
// required as every external tool is: under CI=true a missing openssl is a failure with the fix in the message
// (never a silent skip); on a workstation the suites that need it skip, with the reason in their names.
import { findOpenssl, makePki as makePkiWith, OPENSSL_INSTALL_HINT, type Pki } from '../../src/dev/certs.js';
import { requiredTool } from './tools.js';

export type { CertificateAuthority, CertifiedKey, Pki } from '../../src/dev/certs.js';

const tool = requiredTool('openssl', findOpenssl(), OPENSSL_INSTALL_HINT);
export const skipWithoutOpenssl = tool.skip;
export const opensslSuiteName = tool.suiteName;

export function makePki(): Promise<Pki> {
  return makePkiWith(tool.require());
}
