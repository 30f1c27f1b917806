// proxies/traefik checked without a cluster or a Traefik: each object against the openAPIV3Schema of Traefik's
// own CRD for its kind (vendored in test/deploy/traefik-crds, v3.7.13), with unknown fields refused as
// `kubectl apply` refuses them (strict field validation), and the forwardAuth settings scopegate's security rests
// on (the README's "HTTP front doors" section says why each one matters).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ROOT } from '../support/process.js';

const CRDS = join(ROOT, 'test', 'deploy', 'traefik-crds');
const PROXIES = join(ROOT, 'proxies', 'traefik');

type Schema = Record<string, unknown>;

/**
 * The schema with `additionalProperties: false` wherever an object lists its properties and does not keep
 * unknown fields: the API server's strict field validation, so a misspelt field is a problem, not ignored.
 */
function strict(schema: Schema): Schema {
  const out: Schema = { ...schema };
  if (out.properties !== undefined) {
    const properties: Record<string, Schema> = {};
    // metadata is the API server's, validated there against ObjectMeta, not in the CRD.
    for (const [name, value] of Object.entries(out.properties as Record<string, Schema>))
      properties[name] = strict(value);
    out.properties = properties;
    if (out['x-kubernetes-preserve-unknown-fields'] !== true && out.additionalProperties === undefined)
      out.additionalProperties = false;
  }
  if (out.items !== undefined) out.items = strict(out.items as Schema);
  if (typeof out.additionalProperties === 'object')
    out.additionalProperties = strict(out.additionalProperties as Schema);
  return out;
}

function crdValidator(file: string, version: string): { kind: string; validate: ValidateFunction } {
  const crd = parseAllDocuments(readFileSync(join(CRDS, file), 'utf8'))[0]!.toJS() as {
    spec: {
      group: string;
      names: { kind: string };
      versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }>;
    };
  };
  const served = crd.spec.versions.find((v) => v.name === version);
  if (served === undefined) throw new Error(`${file} has no version ${version}`);
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  return { kind: crd.spec.names.kind, validate: ajv.compile(strict(served.schema.openAPIV3Schema)) };
}

const validators = new Map(
  ['traefik.io_middlewares.yaml', 'traefik.io_ingressroutes.yaml'].map((file) => {
    const { kind, validate } = crdValidator(file, 'v1alpha1');
    return [kind, validate] as const;
  }),
);

interface TraefikObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: Record<string, unknown>;
}

function objectsOf(file: string): TraefikObject[] {
  return parseAllDocuments(readFileSync(join(PROXIES, file), 'utf8')).map(
    (doc) => doc.toJS() as TraefikObject,
  );
}

function problems(object: TraefikObject): string[] {
  if (object.apiVersion !== 'traefik.io/v1alpha1') return [`apiVersion ${object.apiVersion}`];
  const validate = validators.get(object.kind);
  if (validate === undefined) return [`no schema for kind ${object.kind}`];
  if (validate(object)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
}

const middleware = objectsOf('middleware.yaml');
const forwardAuth = middleware[0]!.spec.forwardAuth as Record<string, unknown>;

describe("proxies/traefik against Traefik's CRD schemas (v3.7.13)", () => {
  it.each(['middleware.yaml', 'ingressroute.yaml'])('%s: every object is valid', (file) => {
    const objects = objectsOf(file);
    expect(objects.length).toBeGreaterThan(0);
    expect(objects.flatMap(problems)).toEqual([]);
  });

  it('refuses a middleware broken on purpose: a misspelt field, a wrong type', () => {
    const misspelt = structuredClone(middleware[0]!);
    (misspelt.spec.forwardAuth as Record<string, unknown>).trustForwardHeaders = false;
    expect(problems(misspelt).join('\n')).toMatch(/additional properties.*trustForwardHeaders/);
    const wrongType = structuredClone(middleware[0]!);
    (wrongType.spec.forwardAuth as Record<string, unknown>).authResponseHeaders = 'X-Scopegate-Subject';
    expect(problems(wrongType).join('\n')).toMatch(/authResponseHeaders must be array/);
  });
});

describe('the forwardAuth settings scopegate relies on', () => {
  it('never trusts a client X-Forwarded-* and sends only the headers scopegate reads, no body', () => {
    expect(forwardAuth.trustForwardHeader).toBe(false);
    expect(forwardAuth.authRequestHeaders).toEqual(['Authorization', 'X-Request-Id']);
    expect(forwardAuth.forwardBody).toBeUndefined();
    expect(forwardAuth.address).toMatch(/^http:\/\/scopegate\.[^/]+:9193\//);
  });

  it('copies every identity header scopegate sets, and its regex removes any spelling of a client x-scopegate-*', () => {
    expect(forwardAuth.authResponseHeaders).toEqual(
      ['Subject', 'Client', 'Issuer', 'Route', 'Policy', 'Peer'].map((n) => `X-Scopegate-${n}`),
    );
    // Traefik matches Go's canonical header names (Go canonicalises on dashes only) with Go's regexp, which
    // shares this syntax for what the pattern uses.
    const pattern = String(forwardAuth.authResponseHeadersRegex);
    const regex = new RegExp(pattern.replace(/^\(\?i\)/, ''), 'i');
    for (const name of [
      'X-Scopegate-Subject',
      'X_scopegate_subject',
      'X.scopegate.subject',
      'X-Scopegate-Anything',
    ])
      expect(regex.test(name), name).toBe(true);
    for (const name of ['Authorization', 'X-Request-Id', 'Xscopegate-Subject'])
      expect(regex.test(name), name).toBe(false);
  });

  it('the IngressRoute uses the middleware', () => {
    const [route] = objectsOf('ingressroute.yaml');
    const routes = route!.spec.routes as Array<{ middlewares?: Array<{ name: string }> }>;
    for (const r of routes) expect(r.middlewares).toEqual([{ name: middleware[0]!.metadata.name }]);
  });
});
