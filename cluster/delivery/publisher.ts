/** The port through which protected commands leave the C2. */

/**
 * Publishes one protected command to a device's control topic. Resolves when the broker has
 * acknowledged it (QoS 1 PUBACK: DESIGN R9, "delivered" means accepted by the broker); rejects on
 * timeout or when not connected, and then guarantees the message will not be sent later by a
 * library-level retry (a late copy could reach the device after a newer command).
 */
export interface CommandPublisher {
  /**
   * @throws an error for which {@link wasNotSent} is true when nothing was handed to the broker
   *   (not connected, closing): no byte of it can reach the device
   */
  publish(topic: string, payload: Uint8Array): Promise<void>;
}

/**
 * Whether a publish failed before anything was handed to the broker (the error's `notSent`).
 * Such a failure is no attempt against the retransmission cap (R6: the cap bounds what can reach
 * a device): the device stays pending, and the sweep sends its work once the link is back.
 */
export function wasNotSent(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { notSent?: unknown }).notSent === true;
}
