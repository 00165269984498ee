/** The port through which protected commands leave the C2. */

/**
 * Publishes one protected command to a device's control topic. Resolves when the broker has
 * acknowledged it (QoS 1 PUBACK: DESIGN R9, "delivered" means accepted by the broker); rejects on
 * timeout or when not connected, and then guarantees the message will not be sent later by a
 * library-level retry (a late copy could reach the device after a newer command).
 */
export interface CommandPublisher {
  publish(topic: string, payload: Uint8Array): Promise<void>;
}
