// The answer to one Check, from its decision: kept (encoded once) when the decision answers many requests and
// its answer depends on nothing else, built afresh otherwise. Everything the caller sees comes from encode.ts.

import type { Decision } from '../vocabulary/index.js';
import { goesThrough } from '../vocabulary/index.js';
import { isIdentityHeader, type ResponseContext, toCheckResponse } from './encode.js';
import { type Answer, keptAllow, keptDeny } from './kept.js';

export function answerFor(decision: Decision, context: ResponseContext): Answer {
  const { kept } = decision;
  // A dry-run deny goes through like an allow and strips like one: built afresh, as it is rare.
  if (kept === undefined || (decision.dryRun && goesThrough(decision)))
    return toCheckResponse(decision, context);
  if (decision.reason === 'allowed') {
    // The kept allow strips nothing: a request that sent its own x-scopegate-* needs its own answer.
    if (hasIdentityHeader(context.requestHeaderNames)) return toCheckResponse(decision, context);
    return keptAllow(kept, () => toCheckResponse(decision, context));
  }
  return keptDeny(kept, { ...context, hints: context.hints === true }, (requestId) =>
    toCheckResponse(decision, { ...context, requestId }),
  );
}

function hasIdentityHeader(names: Iterable<string>): boolean {
  for (const name of names) if (isIdentityHeader(name)) return true;
  return false;
}
