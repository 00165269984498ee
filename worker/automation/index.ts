/** The automation engine: leader-elected scheduled and event-driven key rotation. */
export {
  AutomationEngine,
  DEFAULT_CATCH_UP_WINDOW_MS,
  type AutomationEngineOptions,
  type AutomationObserver,
  type TickReport,
} from './automation-engine.ts';
export {
  resolveTargets,
  runFiring,
  subjectRequestId,
  type AutomationC2,
  type FiringOutcome,
} from './firing-runner.ts';
export { RolloutGate, type RolloutStop, type Sleep } from './rollout-policy.ts';
export { cronSlots, planSchedule, type SchedulePlan, type TimeTrigger } from './schedule.ts';
export {
  countEvents,
  EVENT_GAP_SETTLE_MS,
  eventMatchesTargets,
  memberRemovals,
  settledEvents,
} from './trigger-evaluation.ts';
