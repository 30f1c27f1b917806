// The decision's label (the metric's and the log's `decision`) and whether the request reaches the upstream:
// both read from the reasons table and the dry-run flag, for every reason.
import { describe, expect, it } from 'vitest';
import { decisionLabel, goesThrough } from '../../../src/vocabulary/decision.js';
import { REASON_CODES } from '../../../src/vocabulary/reasons.js';

const denies = REASON_CODES.filter((reason) => reason !== 'allowed');

describe('decisionLabel', () => {
  it('an allowed decision is allow, with or without the dry-run flag', () => {
    expect(decisionLabel({ reason: 'allowed' })).toBe('allow');
    expect(decisionLabel({ reason: 'allowed', dryRun: true })).toBe('allow');
  });

  it('every other reason is deny, and dry_run_deny when dry-run mode let it through', () => {
    for (const reason of denies) {
      expect(decisionLabel({ reason }), reason).toBe('deny');
      expect(decisionLabel({ reason, dryRun: false }), reason).toBe('deny');
      expect(decisionLabel({ reason, dryRun: true }), reason).toBe('dry_run_deny');
    }
  });
});

describe('goesThrough', () => {
  it('an allow and a dry-run deny reach the upstream; a deny does not', () => {
    expect(goesThrough({ reason: 'allowed' })).toBe(true);
    for (const reason of denies) {
      expect(goesThrough({ reason }), reason).toBe(false);
      expect(goesThrough({ reason, dryRun: true }), reason).toBe(true);
    }
  });
});
