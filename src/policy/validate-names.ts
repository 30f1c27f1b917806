// The names one section of a policy defines and later sections refer to: permissions and scopes (from
// `scopes`), roles, the issuers listed, and the subjects and clients already given per issuer. The
// validator reads sections in dependency order, so each section finds here what the earlier ones defined.
import type { Node } from 'yaml';
import { unknownMessage } from '../config/problems.js';
import type { Located, YamlReader } from '../config/yaml.js';

export class DefinedNames {
  /** Every permission some scope grants; undefined until `scopes` is read or when it is too broken. */
  permissions?: Set<string>;
  scopes?: Set<string>;
  /** Undefined: no `roles` section; null: a `roles` section too broken to check against. */
  roles?: Set<string> | null;
  /** Whether the policy has a `peers` section (routes that need a peer are refused without one). */
  peers = false;
  /** The issuers listed (empty: none, Envoy's jwt_authn vouches); null: the list is broken. */
  issuers: string[] | null = [];
  /** `issuer\nname` → where it is given, per section: each name may be given once within its issuer. */
  readonly identities = { subjects: new Map<string, Node>(), clients: new Map<string, Node>() };
  private suggestionBudget = 200;

  constructor(private readonly reader: YamlReader) {}

  /** Reports each reference to a name the policy does not define, with the defined name it probably meant. */
  checkRefs(kind: 'permission' | 'scope' | 'role', refs: readonly Located[]): void {
    if (kind === 'role' && this.roles === undefined) {
      for (const r of refs) {
        this.reader.report(
          r.node,
          r.field,
          `role "${r.value}" is not defined: this policy has no roles section`,
        );
      }
      return;
    }
    const known = kind === 'permission' ? this.permissions : kind === 'scope' ? this.scopes : this.roles;
    // The section itself is broken (already reported): checking against it would only add noise.
    if (!known) return;
    const candidates = [...known];
    for (const r of refs) {
      if (known.has(r.value)) continue;
      // Suggestions cost a scan of every known name; a file full of typos gets them for the first ones only.
      const suggest = this.suggestionBudget-- > 0;
      this.reader.report(r.node, r.field, unknownMessage(kind, r.value, suggest ? candidates : [], false));
    }
  }
}
