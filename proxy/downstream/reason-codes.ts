/** MQTT reason codes the downstream side sends (MQTT 5 §2.4), and 3.1.1 CONNACK return codes. */

/** MQTT 5 reason codes. */
export const RC = {
  success: 0x00,
  unspecified: 0x80,
  notAuthorized: 0x87,
  topicFilterInvalid: 0x8f,
  badCredentials: 0x86,
  serverUnavailable: 0x88,
  badAuthMethod: 0x8c,
  packetTooLarge: 0x95,
  unsupportedVersion: 0x84,
  clientIdInvalid: 0x85,
  malformedPacket: 0x81,
  protocolError: 0x82,
  keepAliveTimeout: 0x8d,
  topicNameInvalid: 0x90,
  topicAliasInvalid: 0x94,
} as const;

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
export const V4_CONNACK = {
  badVersion: 1,
  idRejected: 2,
  unavailable: 3,
  badCredentials: 4,
  notAuthorized: 5,
} as const;
