/** The event stream's cluster-wide wake-ups (Postgres LISTEN/NOTIFY). */
export {
  connectListener,
  PgEventNotifications,
  type EventWakeups,
  type ListenConnection,
  type PgEventNotificationsOptions,
} from './event-notifications.ts';
