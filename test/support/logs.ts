// A real scopegate logger (createLogger: same redaction, same level labels) writing into memory, so a test
// reads the very lines an operator would.
import { Writable } from 'node:stream';
import type { LogLevel } from '../../src/config/settings.js';
import { createLogger } from '../../src/telemetry/log.js';

export interface CapturedLog {
  readonly log: ReturnType<typeof createLogger>;
  /** The lines written so far, parsed. */
  readonly lines: Array<Record<string, unknown>>;
  /** The same lines as written. */
  readonly text: string[];
}

export function captureLog(level: LogLevel): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const text: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        text.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { log: createLogger(level, sink), lines, text };
}
