// A policy with n routes and n subjects for the scale benchmarks (bench/pipeline-cost.js, bench/check-load.js
// --scenario scale), written compactly: a policy file may be at most 1 MiB, a ConfigMap's limit. Client
// `bench` may use scope `read` (permission P); subject s<i> has role R (P); route r<i> is GET /r<i>/{id}.
export function scalePolicyText(n, { issuer, audience, jwksFile }) {
  const lines = [
    'version: 1',
    'authentication:',
    `  issuers: [{ issuer: "${issuer}", audiences: ["${audience}"], jwks: { file: ${jwksFile} }, algorithms: [RS256, ES256] }]`,
    'scopes: { read: [P] }',
    'roles: { R: [P] }',
    'clients: { bench: { scopes: [read], grantTypes: [client_credentials] } }',
    'subjects:',
  ];
  for (let i = 0; i < n; i++) lines.push(`  s${i}: {roles: [R]}`);
  lines.push('routes:');
  for (let i = 0; i < n; i++)
    lines.push(`  - {name: r${i}, method: GET, path: "/r${i}/{id}", permissions: [P]}`);
  return `${lines.join('\n')}\n`;
}

/** Request i of a scale run: spread over every route and every token (so over the subjects they name). */
export function scaleRequestAt(i, n, tokenCount) {
  return { token: (i * 7919) % tokenCount, path: `/r${(i * 104_729) % n}/${i}` };
}
