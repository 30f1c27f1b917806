// Who owns what in a policy set: each name, host, destination principal and the default belongs to one
// policy, and each issuer gets its keys from one source, whichever files name it. Which revisions of a
// directory's files may be served together is decided here, with no I/O, so start-up and every live change
// follow one rule:
//   - a new revision that claims what another file's served revision owns is refused: the policy already
//     serving keeps its claim (a live edit can never take a host away from another team);
//   - new revisions that claim the same thing as each other are all refused: which file was read first
//     never decides who owns a host (at start-up, nothing is serving yet, so both files of a clash are).
// A refusal names both places, FILE:LINE:COL each.
import { keySource } from './compile.js';
import type { ClaimSite, CompiledPolicy, PolicyProblem } from './types.js';
import { claimKey } from './validate-match.js';

/** A policy revision and the file it comes from. */
export interface Contender {
  readonly file: string;
  readonly policy: CompiledPolicy;
}

export interface Admission {
  readonly admitted: readonly Contender[];
  /** File → why its new revision may not be served. */
  readonly refused: ReadonlyMap<string, PolicyProblem[]>;
}

type ClaimKind = Parameters<typeof claimKey>[0];

/** One claim a revision makes, as compared across files. */
interface Claim {
  readonly kind: ClaimKind;
  readonly key: string;
  /** For an issuer: its key source (two files clash only when their sources differ). */
  readonly source?: string;
  readonly what: string;
  readonly site: ClaimSite;
  readonly holder: Contender;
}

/**
 * Which of `candidates` (new revisions, at most one per file) may be served beside `serving` (the revisions
 * served now by every other file). Candidates keep their order.
 */
export function admit(candidates: readonly Contender[], serving: readonly Contender[]): Admission {
  const owned = new Map<string, Claim>();
  for (const holder of serving) for (const claim of claimsOf(holder)) owned.set(claim.key, claim);

  const refused = new Map<string, PolicyProblem[]>();
  const refuse = (claim: Claim, other: Claim, servedThere: boolean) => {
    const { line, col, field } = claim.site;
    const problems = refused.get(claim.holder.file) ?? [];
    problems.push({
      file: claim.holder.file,
      line,
      col,
      field,
      message: clashMessage(claim, other, servedThere),
    });
    refused.set(claim.holder.file, problems);
  };

  // Against what is served: the served file keeps its claim.
  const claimed = new Map<string, Claim[]>();
  for (const candidate of candidates) {
    for (const claim of claimsOf(candidate)) {
      const owner = owned.get(claim.key);
      if (owner !== undefined && clash(claim, owner)) refuse(claim, owner, true);
      const same = claimed.get(claim.key) ?? [];
      same.push(claim);
      claimed.set(claim.key, same);
    }
  }
  // Among the new revisions: every one in a clash is refused, each naming the other. Most keys have one
  // claimant; an issuer every file trusts has them all (at start-up, every file of the set) and clashes only
  // if their key sources differ, so it is compared pair by pair only then, not quadratically in the files.
  for (const same of claimed.values()) {
    if (
      same.length < 2 ||
      same.every((claim) => claim.kind === 'issuer' && claim.source === same[0]!.source)
    ) {
      continue;
    }
    for (const claim of same) {
      for (const other of same) if (other !== claim && clash(claim, other)) refuse(claim, other, false);
    }
  }
  return { admitted: candidates.filter((c) => !refused.has(c.file)), refused };
}

function claimsOf(holder: Contender): Claim[] {
  const { owns, issuers } = holder.policy;
  const claim = (kind: ClaimKind, value: string, what: string, source?: string): Claim => {
    const key = claimKey(kind, value);
    const site = owns.sites[key] ?? { line: 1, col: 1, field: '' };
    return { kind, key, what, site, holder, ...(source !== undefined && { source }) };
  };
  return [
    claim('name', owns.name, `policy name "${owns.name}"`),
    ...owns.hosts.map((h) => claim('host', h, `host "${h}"`)),
    ...owns.destinationPrincipals.map((p) =>
      claim('destinationPrincipal', p, `destination principal "${p}"`),
    ),
    ...(owns.default ? [claim('default', '', 'match.default')] : []),
    ...issuers.map((i) => claim('issuer', i.issuer, `issuer "${i.issuer}"`, keySource(i))),
  ];
}

function clash(a: Claim, b: Claim): boolean {
  if (a.holder.file === b.holder.file) return false;
  // Many policies may trust one issuer; they clash only on where its keys come from.
  return a.kind === 'issuer' ? a.source !== b.source : true;
}

function clashMessage(claim: Claim, other: Claim, servedThere: boolean): string {
  const there = `${other.holder.file}:${other.site.line}:${other.site.col} (policy "${other.holder.policy.name}")`;
  switch (claim.kind) {
    case 'issuer':
      return `${claim.what} gets its keys from another JWKS in ${there}; an issuer has one key source in a policy set`;
    case 'default':
      return `${there} is the default policy already; at most one policy may be the default`;
    case 'name':
      return `${claim.what} is taken by ${there}; each policy needs its own name`;
    default:
      return servedThere
        ? `${claim.what} belongs to ${there}, which keeps it; a request belongs to one policy`
        : `${claim.what} is also claimed by ${there}; a request belongs to one policy`;
  }
}
