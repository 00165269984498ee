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
  /** Messages of {@link deliverQueued} the client acknowledged (their `done` ran), in order. */
  readonly acknowledged: InboundMessage[] = [];
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

  /**
   * Delivers `messages` as mqtt.js does: the first at once (synchronously), each next one only
   * after the previous one's `done`.
   */
  deliverQueued(messages: readonly InboundMessage[]): void {
    const [first, ...rest] = messages;
    if (first === undefined) return;
    this.handlers.onMessage(first, () => {
      this.acknowledged.push(first);
      this.deliverQueued(rest);
    });
  }
}

/** Hands out {@link FakeSession}s. */
export class FakeUpstream implements UpstreamConnector {
  readonly sessions: FakeSession[] = [];
  /**
   * Messages a persistent session holds: the next session opened delivers them (and reports a
   * session present) before `connect` resolves, as the broker sends them right after its CONNACK.
   */
  queued: InboundMessage[] = [];

  connect(
    options: UpstreamSessionOptions,
    handlers: UpstreamHandlers,
  ): Promise<{ link: UpstreamLink; sessionPresent: boolean }> {
    const session = new FakeSession(options, handlers);
    this.sessions.push(session);
    const queued = this.queued.splice(0);
    session.deliverQueued(queued);
    return Promise.resolve({ link: session, sessionPresent: queued.length > 0 });
  }
}
