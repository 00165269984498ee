/**
 * A small OTLP/HTTP receiver for tests: it answers every POST as a collector does (200, `{}`) and
 * keeps what was sent where, so a test sees the path spans arrived at and what they said, in
 * either encoding (`http/json`, `http/protobuf`).
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
  /** The body as received. */
  readonly raw: Buffer;
}

/** A running sink. */
export interface OtlpSink {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  readonly url: string;
  readonly requests: readonly OtlpRequest[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
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
    void readBody(req).then((raw) => {
      requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        body: parseJson(raw.toString('utf8')),
        raw,
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

/** An OTLP export request's spans: their names and their resource's string attributes. */
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

/** The resource spans of a request in either encoding, judged by its content type. */
export function requestSpans(request: OtlpRequest): ExportedSpans[] {
  return request.contentType === 'application/x-protobuf'
    ? protobufExportedSpans(request.raw)
    : exportedSpans(request.body);
}

/** One field of a protobuf message: its number and, when length-delimited, its bytes. */
interface ProtoField {
  readonly field: number;
  readonly bytes: Buffer | undefined;
}

function readVarint(buf: Buffer, at: { pos: number }): number {
  let value = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = buf[at.pos++];
    if (byte === undefined) throw new RangeError('truncated varint');
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return value;
  }
}

/** The top-level fields of a protobuf message (the wire format; no schema needed). */
function protoFields(buf: Buffer): ProtoField[] {
  const fields: ProtoField[] = [];
  const at = { pos: 0 };
  while (at.pos < buf.length) {
    const tag = readVarint(buf, at);
    const field = Math.floor(tag / 8);
    switch (tag % 8) {
      case 0:
        readVarint(buf, at);
        fields.push({ field, bytes: undefined });
        break;
      case 1:
        at.pos += 8;
        fields.push({ field, bytes: undefined });
        break;
      case 2: {
        const length = readVarint(buf, at);
        fields.push({ field, bytes: buf.subarray(at.pos, at.pos + length) });
        at.pos += length;
        break;
      }
      case 5:
        at.pos += 4;
        fields.push({ field, bytes: undefined });
        break;
      default:
        throw new RangeError(`wire type ${tag % 8} is not used by OTLP`);
    }
  }
  return fields;
}

/** The length-delimited values of `field` in `buf`. */
function repeated(buf: Buffer | undefined, field: number): Buffer[] {
  if (buf === undefined) return [];
  return protoFields(buf).flatMap((f) =>
    f.field === field && f.bytes !== undefined ? [f.bytes] : [],
  );
}

/**
 * The resource spans of an OTLP/protobuf `ExportTraceServiceRequest`: resource_spans (1) →
 * resource (1) → attributes (1: key 1, value 2 → string_value 1); scope_spans (2) → spans (2) →
 * name (5), as opentelemetry-proto's trace and common definitions number them.
 */
export function protobufExportedSpans(body: Buffer): ExportedSpans[] {
  return repeated(body, 1).map((resourceSpans) => ({
    resource: Object.fromEntries(
      repeated(repeated(resourceSpans, 1)[0], 1).flatMap((keyValue) => {
        const key = repeated(keyValue, 1)[0];
        const text = repeated(repeated(keyValue, 2)[0], 1)[0];
        return key === undefined || text === undefined
          ? []
          : [[key.toString('utf8'), text.toString('utf8')]];
      }),
    ),
    spanNames: repeated(resourceSpans, 2).flatMap((scopeSpans) =>
      repeated(scopeSpans, 2).flatMap((span) => repeated(span, 5).map((n) => n.toString('utf8'))),
    ),
  }));
}
