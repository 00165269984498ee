/** A node:http2 client for tests: one connection, many requests and event streams on it. */
import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';

/** An HTTP/2 answer. */
export interface Http2Result {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly text: string;
}

/** Options of {@link Http2TestClient.request}. */
export interface Http2RequestOptions {
  readonly body?: string | Buffer;
  /** Request headers, pseudo-headers (`:authority`) included. */
  readonly headers?: Record<string, string>;
}

/** One server-sent event stream, its text as it arrives. */
export interface Http2EventStream {
  readonly stream: ClientHttp2Stream;
  /** The status and headers, once they came. */
  readonly response: Promise<Readonly<Record<string, string | string[] | undefined>>>;
  /** Everything received so far. */
  text(): string;
  /** Resolves when the server ended the stream (or it closed). */
  readonly ended: Promise<void>;
}

/** One HTTP/2 connection to `https://localhost:<port>`, trusting `ca`. */
export class Http2TestClient {
  readonly session: ClientHttp2Session;
  readonly connected: Promise<void>;
  /** Resolves when the server sent GOAWAY. */
  readonly goaway: Promise<void>;

  constructor(port: number, ca: string, clientCert?: { cert: string; key: string }) {
    this.session = connect(`https://localhost:${port}`, {
      ca,
      ...(clientCert === undefined ? {} : clientCert),
    });
    this.session.on('error', () => {
      // Surfaces on the streams; a destroyed connection is what some tests expect.
    });
    this.connected = new Promise((resolve, reject) => {
      this.session.once('connect', () => {
        resolve();
      });
      this.session.once('error', reject);
    });
    this.goaway = new Promise((resolve) => {
      this.session.once('goaway', () => {
        resolve();
      });
    });
  }

  /** One request; `:method` GET and `:path` `path` unless `headers` say otherwise. */
  request(method: string, path: string, options: Http2RequestOptions = {}): Promise<Http2Result> {
    const stream = this.session.request({ ':method': method, ':path': path, ...options.headers });
    return new Promise((resolve, reject) => {
      let headers: Record<string, string | string[] | undefined> = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        headers = h;
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        resolve({
          status: Number(headers[':status']),
          headers,
          text: Buffer.concat(chunks).toString('utf8'),
        });
      });
      stream.on('error', reject);
      stream.end(options.body);
    });
  }

  /** Opens `GET /v1/events/stream` (with `headers`) on this connection. */
  events(headers: Record<string, string> = {}): Http2EventStream {
    const stream = this.session.request({ ':path': '/v1/events/stream', ...headers });
    stream.setEncoding('utf8');
    let text = '';
    stream.on('data', (chunk: string) => {
      text += chunk;
    });
    const response = new Promise<Record<string, string | string[] | undefined>>(
      (resolve, reject) => {
        stream.once('response', resolve);
        stream.once('error', reject);
      },
    );
    const ended = new Promise<void>((resolve) => {
      stream.once('close', resolve);
    });
    stream.end();
    return { stream, response, text: () => text, ended };
  }

  /** Closes the connection (waits for nothing). */
  close(): void {
    this.session.destroy();
  }
}
