/** The C2 domain: use-cases over the storage and key-vault ports. */
export { C2Service } from './c2-service.ts';
export {
  bindings,
  type C2CryptoMode,
  type DeliveryKick,
  type DomainDeps,
  type KeySealer,
  type RequestContext,
  type SealBinding,
} from './ports.ts';
export type { ClientDetails, CursorPage, KeyVersionInfo, TopicDetails } from './queries.ts';
export type { NewClientResult } from './client-ops.ts';
export type { TopicKeyResult } from './topic-ops.ts';
export type { MonitoringKeys, TopicTraffic } from './traffic-ops.ts';
export {
  DEFAULT_EVENT_SEQ_MARGIN,
  DEFAULT_VERSION_MARGIN,
  type IssuedSinceBackup,
  type IssuedSubject,
  type RestoreOptions,
  type RestoreReconciliation,
} from './restore-ops.ts';
export { checkClientName, checkTopicName } from './validation.ts';
export { AutomationService, type AutomationStatus } from './automation-service.ts';
export { actionRefusal, type AutomationCapabilities } from './automation-capabilities.ts';
export {
  AUTOMATION_ACTIONS,
  checkRuleDraft,
  checkTarget,
  checkTrigger,
  targetMatcher,
  type TargetMatcher,
  TRIGGER_KINDS,
} from './automation-rules.ts';
