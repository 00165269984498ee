/** MQTT topic names and filters: validation and wildcard matching (MQTT 3.1.1 §4.7, 5 §4.7). */

/** Longest topic in bytes (MQTT's UTF-8 string limit). */
const MAX_TOPIC_BYTES = 65_535;

/** True for a topic a client may publish to: non-empty, no wildcards, no NUL, at most 64 KiB. */
export function isValidTopicName(topic: string): boolean {
  return (
    topic.length > 0 &&
    !/[#+]/.test(topic) &&
    !topic.includes('\u0000') &&
    Buffer.byteLength(topic, 'utf8') <= MAX_TOPIC_BYTES
  );
}

/** True for a valid subscription filter: `+` fills a whole level, `#` only as the last level. */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  if (Buffer.byteLength(filter, 'utf8') > MAX_TOPIC_BYTES) return false;
  const levels = filter.split('/');
  return levels.every((level, i) => {
    if (level.includes('#')) return level === '#' && i === levels.length - 1;
    return !level.includes('+') || level === '+';
  });
}

/**
 * True when `topic` matches `filter`. Topics starting with `$` are not matched by a filter that
 * starts with a wildcard (MQTT-4.7.2-1). `$share/<group>/` prefixes are stripped.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const effective = stripShare(filter);
  const f = effective.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '#' || f[0] === '+')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The filter of a shared subscription (`$share/group/filter`), or the filter itself. */
export function stripShare(filter: string): string {
  if (!filter.startsWith('$share/')) return filter;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? rest : rest.slice(slash + 1);
}

/** An E4 control topic (`e4/` and a 32-digit hex client id): C2 commands, never for devices. */
export function isControlTopic(topic: string): boolean {
  return /^e4\/[0-9a-f]{32}$/.test(topic);
}
