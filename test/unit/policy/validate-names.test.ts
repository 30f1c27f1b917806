// What a section refers to must be defined by an earlier one: a reference to an unknown permission, scope or
// role is reported at the reference, with the defined name it probably meant while suggestions are cheap.
import { describe, expect, test } from 'vitest';
import type { Node } from 'yaml';
import { formatProblem } from '../../../src/config/problems.js';
import { parseYaml, YamlReader } from '../../../src/config/yaml.js';
import { DefinedNames } from '../../../src/policy/validate-names.js';

/** The names in `list: [...]`, located, and a fresh DefinedNames over the same reader. */
function refs(list: string) {
  const parsed = parseYaml(`refs: [${list}]\n`, { uniqueKeys: true });
  const reader = new YamlReader(parsed, 'policy.yaml', { followAliases: true });
  const [entry] = reader.entries(parsed.doc.contents as Node, '')!;
  return {
    reader,
    defined: new DefinedNames(reader),
    located: reader.stringList(entry!.value, 'refs')!,
    problems: () => reader.problems.map(formatProblem),
  };
}

describe('DefinedNames.checkRefs', () => {
  test('a defined name passes; an unknown one is reported at the reference with a suggestion', () => {
    const { defined, located, problems } = refs('INV_TRANSACTION_READ, INV_TRANSACTON_READ, INV_AUDIT');
    defined.permissions = new Set(['INV_TRANSACTION_READ', 'INV_TRANSACTION_CREATE']);
    defined.checkRefs('permission', located);
    expect(problems()).toEqual([
      'policy.yaml:1:30: refs[1]: unknown permission "INV_TRANSACTON_READ"; did you mean "INV_TRANSACTION_READ"?',
      'policy.yaml:1:51: refs[2]: unknown permission "INV_AUDIT"',
    ]);
  });

  test('scopes and roles are checked against their own sections', () => {
    const { defined, located, problems } = refs('inventory.writes');
    defined.scopes = new Set(['inventory.read', 'inventory.write']);
    defined.roles = new Set(['inventory.writes']);
    defined.checkRefs('scope', located);
    defined.checkRefs('role', located);
    expect(problems()).toEqual([
      'policy.yaml:1:8: refs[0]: unknown scope "inventory.writes"; did you mean "inventory.write"?',
    ]);
  });

  test('a role with no roles section at all is an error of its own', () => {
    const { defined, located, problems } = refs('Inventory Data Reader');
    defined.checkRefs('role', located);
    expect(problems()).toEqual([
      'policy.yaml:1:8: refs[0]: role "Inventory Data Reader" is not defined: this policy has no roles section',
    ]);
  });

  test('a section too broken to read is not checked against (its own problems say enough)', () => {
    const { defined, located, problems } = refs('anything');
    defined.roles = null;
    defined.checkRefs('role', located);
    defined.checkRefs('permission', located);
    defined.checkRefs('scope', located);
    expect(problems()).toEqual([]);
  });

  test('after 200 suggestions, unknown names are still reported, without the costly suggestion', () => {
    const { defined, located, problems } = refs(Array(201).fill('PERM_RAED').join(', '));
    defined.permissions = new Set(['PERM_READ']);
    defined.checkRefs('permission', located);
    const reported = problems();
    expect(reported).toHaveLength(201);
    expect(reported[199]).toMatch(/refs\[199\]: unknown permission "PERM_RAED"; did you mean "PERM_READ"\?$/);
    expect(reported[200]).toMatch(/refs\[200\]: unknown permission "PERM_RAED"$/);
  });
});
