// How the identity phase tells errors apart: by their stable `code`, never by their message (jose's way), and
// the two errors its key handling raises itself.

export { errorCode } from '../config/text-file.js';

/** Thrown from the key resolver when an issuer has no usable keys at all; verify maps it to keys_unavailable. */
export class KeysUnavailableError extends Error {
  readonly code = 'ERR_SCOPEGATE_KEYS_UNAVAILABLE';
  constructor(issuer: string) {
    super(`no usable signing keys are loaded for issuer ${issuer}`);
  }
}

/** Why a key set could not be loaded; the message is safe to show (no URL, no key material). */
export class KeyLoadError extends Error {}
