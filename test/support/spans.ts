// The real trace SDK exporting into memory: what a collector would receive, read by tests. (The SDK's own
// InMemorySpanExporter forgets its spans on shutdown, which is exactly when a server flushes them.)
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { TracingSettings } from '../../src/config/settings.js';
import { openTracing, type Tracing } from '../../src/telemetry/otel.js';
import { captureLog } from './logs.js';

export interface RecordedTracing {
  readonly tracing: Tracing;
  /** Every span exported so far. */
  readonly spans: ReadableSpan[];
  /** Exports what is queued (the batch processor waits otherwise) and stops. */
  flush(): Promise<ReadableSpan[]>;
}

export async function recordTracing(settings: Partial<TracingSettings> = {}): Promise<RecordedTracing> {
  const spans: ReadableSpan[] = [];
  const exporter: SpanExporter = {
    export: (batch, done) => {
      spans.push(...batch);
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
  const tracing = await openTracing(
    { protocol: 'http/protobuf', identities: false, ...settings },
    captureLog('warn').log,
    exporter,
  );
  return {
    tracing,
    spans,
    flush: async () => {
      await tracing.shutdown(Date.now() + 5_000);
      return spans;
    },
  };
}
