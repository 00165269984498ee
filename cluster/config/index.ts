/**
 * Configuration of a C2 node: `loadConfig(env, fileText?)` validates everything at start-up and
 * returns a deep-frozen, typed {@link Config}; secrets are {@link Secret}s.
 */
export { ConfigError } from './config-error.ts';
export type {
  ApiConfig,
  AutomationConfig,
  Config,
  CryptoConfig,
  CryptoMode,
  DatabaseConfig,
  DeliveryConfig,
  KekConfig,
  LimitsConfig,
  ListenAddress,
  LogConfig,
  LogLevel,
  MqttConfig,
  NodeConfig,
  NodeRole,
  OtlpProtocol,
  RedisConfig,
  TelemetryConfig,
  TlsConfig,
} from './config-types.ts';
export { describeConfig, describeSources } from './describe-config.ts';
export { DEFAULT_VAULT_KEY, DELIVERY_DEFAULTS, loadConfig } from './load-config.ts';
export { Secret } from './secret.ts';
export { CONFIG_FILE_ENV, SETTINGS, type SettingSpec } from './settings.ts';
