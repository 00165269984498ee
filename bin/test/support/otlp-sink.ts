/**
 * A small OTLP/HTTP receiver for tests: it answers every POST as a collector does (200, `{}`) and
 * keeps what was sent where, so a test sees the path spans arrived at and what they said.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the sink received. */
export interface OtlpRequest {
  readonly method: string;
  /** The request path, query included (`/v1/traces`). */
  readonly path: string;
  readonly contentType: string | undefined;
  /** The body as JSON, or `undefined` when it was not JSON (protobuf). */
  readonly body: unknown;
}

/** A running sink. */
export interface OtlpSink {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  readonly url: string;
  readonly requests: readonly OtlpRequest[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Starts a sink on a port of the kernel's choosing on 127.0.0.1. */
export async function startOtlpSink(): Promise<OtlpSink> {
  const requests: OtlpRequest[] = [];
  const server = createServer((req, res) => {
    void readBody(req).then((text) => {
      requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        body: parseJson(text),
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** An OTLP/JSON export request's spans: their names and their resource's string attributes. */
export interface ExportedSpans {
  readonly resource: Readonly<Record<string, string>>;
  readonly spanNames: readonly string[];
}

/** The resource spans of an OTLP/JSON `ExportTraceServiceRequest` (nothing for other bodies). */
export function exportedSpans(body: unknown): ExportedSpans[] {
  const request = body as {
    resourceSpans?: Array<{
      resource?: { attributes?: Array<{ key: string; value?: { stringValue?: string } }> };
      scopeSpans?: Array<{ spans?: Array<{ name: string }> }>;
    }>;
  };
  return (request.resourceSpans ?? []).map((rs) => ({
    resource: Object.fromEntries(
      (rs.resource?.attributes ?? []).flatMap((a) =>
        a.value?.stringValue === undefined ? [] : [[a.key, a.value.stringValue]],
      ),
    ),
    spanNames: (rs.scopeSpans ?? []).flatMap((ss) => (ss.spans ?? []).map((s) => s.name)),
  }));
}
