/** Types of `sse.js` (plain JavaScript so that browsers load it without a build step). */
export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

export declare class SseParser {
  lastEventId: string | undefined;
  retryMs: number | undefined;
  push(chunk: string): SseEvent[];
}
