/**
 * A hand-written fake of {@link C2Api} that records every call, and {@link runWith}, which runs
 * the CLI in-process against it and captures stdout, stderr and the exit code.
 */
import { status } from '@grpc/grpc-js';
import type {
  AdminRpcs,
  C2Api,
  CallOptions,
  EventRecord,
  EventStream,
  HealthStatus,
  ReferenceEvent,
  ReferenceRpcs,
} from '../../api.ts';
import type { ExitCode } from '../../errors.ts';
import type { ConnectionOptions } from '../../grpc-client.ts';
import { runCli } from '../../run.ts';

/** One recorded call. */
export interface RecordedCall {
  readonly service: 'pb.C2' | 'e4c2.v1' | 'health' | 'events';
  readonly method: string;
  readonly request: unknown;
  readonly options?: CallOptions;
}

type ReferenceHandlers = {
  [M in keyof ReferenceRpcs]?: (
    request: ReferenceRpcs[M]['request'],
  ) => ReferenceRpcs[M]['response'] | Promise<ReferenceRpcs[M]['response']>;
};

type AdminHandlers = {
  [M in keyof AdminRpcs]?: (
    request: AdminRpcs[M]['request'],
  ) => AdminRpcs[M]['response'] | Promise<AdminRpcs[M]['response']>;
};

/** A gRPC status error as @grpc/grpc-js rejects with. */
export function grpcError(
  code: status,
  details: string,
): Error & { code: status; details: string } {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details });
}

/** A stream over fixed items that then ends, or fails with `error`, or waits to be cancelled. */
export function fakeStream<T>(
  items: readonly T[],
  end: 'end' | 'hang' | Error = 'end',
): EventStream<T> & { cancelled: boolean } {
  let cancel: (() => void) | undefined;
  const stream = {
    cancelled: false,
    connected: Promise.resolve(),
    cancel(): void {
      stream.cancelled = true;
      cancel?.();
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<T> {
      for (const item of items) {
        await Promise.resolve();
        yield item;
      }
      if (end === 'end') return;
      if (end instanceof Error) throw end;
      await new Promise<void>((resolve) => {
        cancel = resolve;
      });
      throw grpcError(status.CANCELLED, 'Cancelled on client');
    },
  };
  return stream;
}

/** The fake server. Unhandled reference and admin calls answer `{}`. */
export class FakeApi implements C2Api {
  readonly calls: RecordedCall[] = [];
  closed = 0;
  referenceHandlers: ReferenceHandlers = {};
  adminHandlers: AdminHandlers = {};
  healthHandler: () => HealthStatus | Promise<HealthStatus> = () => ({ status: 'SERVING' });
  referenceStream: EventStream<ReferenceEvent> = fakeStream<ReferenceEvent>([]);
  adminStream: EventStream<EventRecord> = fakeStream<EventRecord>([]);

  /** Sets the handler of one reference RPC; returns this. */
  onReference<M extends keyof ReferenceRpcs>(
    method: M,
    handler: NonNullable<ReferenceHandlers[M]>,
  ): this {
    (this.referenceHandlers as Record<string, unknown>)[method] = handler;
    return this;
  }

  /** Sets the handler of one admin RPC; returns this. */
  onAdmin<M extends keyof AdminRpcs>(method: M, handler: NonNullable<AdminHandlers[M]>): this {
    (this.adminHandlers as Record<string, unknown>)[method] = handler;
    return this;
  }

  async reference<M extends keyof ReferenceRpcs>(
    method: M,
    request: ReferenceRpcs[M]['request'],
    options?: CallOptions,
  ): Promise<ReferenceRpcs[M]['response']> {
    this.calls.push({
      service: 'pb.C2',
      method,
      request,
      ...(options === undefined ? {} : { options }),
    });
    const handler = this.referenceHandlers[method] as
      ((r: ReferenceRpcs[M]['request']) => ReferenceRpcs[M]['response']) | undefined;
    await Promise.resolve();
    return handler === undefined ? {} : handler(request);
  }

  async admin<M extends keyof AdminRpcs>(
    method: M,
    request: AdminRpcs[M]['request'],
  ): Promise<AdminRpcs[M]['response']> {
    this.calls.push({ service: 'e4c2.v1', method, request });
    const handler = this.adminHandlers[method] as
      ((r: AdminRpcs[M]['request']) => AdminRpcs[M]['response']) | undefined;
    await Promise.resolve();
    return handler === undefined ? {} : handler(request);
  }

  referenceEvents(): EventStream<ReferenceEvent> {
    this.calls.push({ service: 'events', method: 'SubscribeToEventStream', request: {} });
    return this.referenceStream;
  }

  adminEvents(afterSeq: string): EventStream<EventRecord> {
    this.calls.push({
      service: 'events',
      method: 'StreamEvents',
      request: { after_seq: afterSeq },
    });
    return this.adminStream;
  }

  async health(): Promise<HealthStatus> {
    this.calls.push({ service: 'health', method: 'Check', request: { service: '' } });
    return this.healthHandler();
  }

  close(): void {
    this.closed++;
  }

  /** The methods called, in order (`pb.C2/NewClient`, `e4c2.v1/GetClient`, ...). */
  methods(): string[] {
    return this.calls.map((c) => `${c.service}/${c.method}`);
  }
}

/** What {@link runWith} returns. */
export interface RunResult {
  readonly code: ExitCode;
  readonly stdout: string;
  readonly stderr: string;
  readonly api: FakeApi;
  /** The options the CLI connected with (undefined when it never connected). */
  readonly connection: ConnectionOptions | undefined;
}

/** Options of {@link runWith}. */
export interface RunOptions {
  readonly api?: FakeApi;
  /** Local files by path. */
  readonly files?: Readonly<Record<string, Uint8Array | string>>;
  readonly env?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** Permission bits of local files by path (absent: unknown). */
  readonly modes?: Readonly<Record<string, number>>;
}

/** Runs the CLI in-process on `argv` against a fake server. */
export async function runWith(
  argv: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const api = options.api ?? new FakeApi();
  let stdout = '';
  let stderr = '';
  let connection: ConnectionOptions | undefined;
  const files = options.files ?? {};
  const code = await runCli({
    argv,
    env: options.env ?? {},
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    version: '9.9.9',
    connect: (o) => {
      connection = o;
      return api;
    },
    readFile: (path) => {
      const content = files[path];
      if (content === undefined) {
        return Promise.reject(new Error(`ENOENT: no such file or directory, open '${path}'`));
      }
      return Promise.resolve(
        typeof content === 'string' ? new TextEncoder().encode(content) : content,
      );
    },
    fileMode: (path) => Promise.resolve(options.modes?.[path]),
    newRequestId: () => 'generated-request-id',
    signal: options.signal ?? new AbortController().signal,
  });
  return { code, stdout, stderr, api, connection };
}
