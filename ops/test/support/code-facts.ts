/**
 * What the code says that the operator files must agree with: setting names, default ports,
 * probe routes. Read from the modules themselves, so a change in the code shows up here.
 */
import { buildRoutes, type RouteSources } from '../../../api/http/routes.ts';
import { HEALTH_SERVICES } from '../../../api/grpc/health-service.ts';
import {
  CONFIG_FILE_ENV,
  loadConfig,
  SETTINGS,
  type SettingSpec,
} from '../../../cluster/config/index.ts';

/**
 * Settings the operator files use before `cluster/config/settings.ts` has them: PENDING, each one
 * flagged to the lead, who adds it to SETTINGS (with its file key). The tests accept a pending
 * name, leave it out of what they pass to `loadConfig`, and report it once SETTINGS has it, so
 * the entry can go. Keep these lists short and explicit. Empty today: `E4C2_ROLE` and
 * `E4C2_REDLOCK_URLS` (file key `redis.redlockUrls`), the last two, landed in SETTINGS.
 */
export const PENDING_ENV_NAMES: readonly string[] = [];

/** Config-file keys used by ops/secrets/c2-config.example.json before SETTINGS has them. */
export const PENDING_FILE_KEYS: readonly string[] = [];

/**
 * OpenTelemetry variables the node leaves to the SDK, that are not settings: the resource
 * detector reads `OTEL_RESOURCE_ATTRIBUTES`, the OTLP exporter its headers (a collector's token).
 * Any other `OTEL_*` name is a setting or is read by nothing: `OTEL_EXPORTER_OTLP_PROTOCOL` sat
 * in the compose file, read by nothing, while every `OTEL_*` name passed here.
 */
export const SDK_ENV_NAMES: ReadonlySet<string> = new Set([
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
]);

/**
 * Standard variables a C2 process may get besides its settings: the OpenTelemetry SDK's own
 * ({@link SDK_ENV_NAMES}) and Node.js's.
 */
export function isStandardEnvName(name: string): boolean {
  return SDK_ENV_NAMES.has(name) || name === 'NODE_OPTIONS' || name === 'NODE_ENV';
}

const SPECS: readonly SettingSpec[] = Object.values(SETTINGS);

/** Every environment variable the server reads (settings plus E4C2_CONFIG_FILE). */
export const SETTING_ENV_NAMES: ReadonlySet<string> = new Set([
  CONFIG_FILE_ENV,
  ...SPECS.map((s) => s.env),
]);

/** Environment variables of secret settings: never in a plain environment value. */
export const SECRET_ENV_NAMES: ReadonlySet<string> = new Set(
  SPECS.filter((s) => s.secret === true).map((s) => s.env),
);

/** Config-file keys of every setting, and of the secret ones. */
export const FILE_KEYS: ReadonlySet<string> = new Set(SPECS.map((s) => s.file));
export const SECRET_FILE_KEYS: ReadonlySet<string> = new Set(
  SPECS.filter((s) => s.secret === true).map((s) => s.file),
);

/** The default listen ports of a node (what `loadConfig({})` gives). */
export const DEFAULT_PORTS = (() => {
  const config = loadConfig({});
  return {
    grpc: config.api.grpc.port,
    http: config.api.http.port,
    metrics: config.api.metrics.port,
  };
})();

/** The standard MQTT port: what an `mqtt://` URL without a port means. */
export const MQTT_PORT = 1883;

/** Paths of the HTTP probe routes (`/healthz`, `/readyz`), from the API's route table. */
export function probePaths(): string[] {
  const none = new Proxy({}, { get: () => undefined });
  const probe = (): Promise<{ status: number; body: unknown }> =>
    Promise.resolve({ status: 200, body: {} });
  const routes = buildRoutes({
    reference: none as RouteSources['reference'],
    admin: none as RouteSources['admin'],
    liveness: probe,
    readiness: probe,
  });
  return routes.filter((r) => r.kind === 'probe').map((r) => r.pattern.template);
}

/** Service names `grpc.health.v1.Health/Check` answers for ('' is the whole server). */
export const GRPC_HEALTH_SERVICES: readonly string[] = HEALTH_SERVICES;
