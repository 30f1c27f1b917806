// The record format (src/record/types.ts) and its JSON Schema at the repository root: a location source as one
// string, and the schema's reasons and front doors the vocabulary's, so a new one cannot ship without the schema.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RECORD_TYPE, RECORD_VERSION, sourceKey } from '../../../src/record/types.js';
import { REASON_CODES, TRANSPORTS } from '../../../src/vocabulary/index.js';

const schema = JSON.parse(
  readFileSync(new URL('../../../decision-record.schema.json', import.meta.url), 'utf8'),
);

describe('the record format', () => {
  it('names a location source by kind and name (headers in lower case, as they are read)', () => {
    expect(sourceKey({ body: 'lines[].location', steps: [] })).toBe('body:lines[].location');
    expect(sourceKey({ path: 'location' })).toBe('path:location');
    expect(sourceKey({ query: 'wh' })).toBe('query:wh');
    expect(sourceKey({ header: 'X-Location' })).toBe('header:x-location');
  });

  it('the schema holds the type, the version, every front door and every reason of the table', () => {
    expect(schema.properties.type.const).toBe(RECORD_TYPE);
    expect(schema.properties.v.const).toBe(RECORD_VERSION);
    // Optional: records written before the door was recorded have none.
    expect(schema.properties.transport.enum).toEqual(TRANSPORTS);
    expect(schema.required).not.toContain('transport');
    expect(schema.$defs.reason.enum).toEqual(REASON_CODES);
    expect(schema.$defs.denyReason.enum).toEqual(REASON_CODES.filter((r) => r !== 'allowed'));
  });
});
