// What makes a text usable as an identity (a subject, client, issuer, role, location): it must reach the
// upstream byte for byte in an `x-scopegate-*` header value (DESIGN.md security rule 8), so it may hold no
// control character and no whitespace at either end (header parsers trim it), and it must have a UTF-8 form.
// The identity phase refuses such claims, the validator such policy names, and the answer never rewrites one.

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters (C0, DEL, C1) are what is refused
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
/** Whitespace at either end: an HTTP field value loses it (RFC 9110 §5.5), so the upstream would read another name. */
const EDGE_WHITESPACE = /^\s|\s$/;

/** Why the text cannot be an identity as it stands; undefined when it can. Printable non-ASCII (`josé`) can. */
export function identityTextProblem(value: string): string | undefined {
  if (!value.isWellFormed()) return 'is not well-formed Unicode';
  if (CONTROL_CHARACTER.test(value)) return 'contains a control character';
  if (EDGE_WHITESPACE.test(value)) return 'starts or ends with whitespace';
  return undefined;
}
