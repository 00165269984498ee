/**
 * The building blocks of `npm start` on embedded defaults (DESIGN §8): a data directory with a
 * lock, an embedded PostgreSQL, an embedded MQTT broker, a self-signed TLS certificate, and the
 * port rules they share.
 */
export { DATA_DIR_LAYOUT, prepareDataDir, type DataDir } from './data-dir.ts';
export {
  DEFAULT_MQTT_PORT,
  startEmbeddedBroker,
  type EmbeddedBrokerOptions,
  type RunningBroker,
} from './embedded-broker.ts';
export {
  DEFAULT_EMBEDDED_POSTGRES_PORT,
  startEmbeddedPostgres,
  type EmbeddedPostgresOptions,
  type PostgresExit,
  type RunningPostgres,
} from './embedded-postgres.ts';
export type { EmbeddedLogger } from './logger.ts';
export {
  choosePort,
  describeFallback,
  findFreePort,
  isPortFree,
  listenOrFallback,
  type PortChoice,
  type PortRequest,
  type PortTakenPolicy,
} from './ports.ts';
export {
  ensureSelfSignedCert,
  type SelfSignedCert,
  type SelfSignedCertOptions,
} from './tls-cert.ts';
