/** An in-memory {@link UpstreamConnector} for tests of the downstream side without a broker. */
import type {
  InboundMessage,
  OutboundMessage,
  SubscriptionRequest,
  UpstreamConnector,
  UpstreamHandlers,
  UpstreamLink,
  UpstreamSessionOptions,
} from '../upstream.ts';

/** One fake session. */
export class FakeSession implements UpstreamLink {
  readonly published: OutboundMessage[] = [];
  readonly subscriptions: SubscriptionRequest[] = [];
  closedWith: 'graceful' | 'cut' | undefined;
  constructor(
    readonly options: UpstreamSessionOptions,
    private readonly handlers: UpstreamHandlers,
  ) {}

  publish(message: OutboundMessage, done: (err?: Error) => void): void {
    this.published.push(message);
    queueMicrotask(() => {
      done();
    });
  }
  subscribe(requests: readonly SubscriptionRequest[], done: (granted: number[]) => void): void {
    this.subscriptions.push(...requests);
    queueMicrotask(() => {
      done(requests.map((r) => r.qos));
    });
  }
  unsubscribe(_topics: readonly string[], done: () => void): void {
    queueMicrotask(done);
  }
  close(graceful: boolean): void {
    this.closedWith = graceful ? 'graceful' : 'cut';
  }

  /** Delivers a message as the broker would; resolves when the client acknowledged it. */
  deliver(message: InboundMessage): Promise<void> {
    return new Promise((resolve) => {
      this.handlers.onMessage(message, resolve);
    });
  }
}

/** Hands out {@link FakeSession}s. */
export class FakeUpstream implements UpstreamConnector {
  readonly sessions: FakeSession[] = [];
  connect(
    options: UpstreamSessionOptions,
    handlers: UpstreamHandlers,
  ): Promise<{ link: UpstreamLink; sessionPresent: boolean }> {
    const session = new FakeSession(options, handlers);
    this.sessions.push(session);
    return Promise.resolve({ link: session, sessionPresent: false });
  }
}
