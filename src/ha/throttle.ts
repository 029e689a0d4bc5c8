/**
 * Repeated warnings, throttled per key: the first occurrence is logged, the repeats within the next
 * `everyMs` are only counted, and the first occurrence after that is logged with the number of
 * repeats it stands for (`repeats`). So a condition that recurs five times a second costs one line
 * every `everyMs` instead of five a second, and the line still says how often it happened. The
 * exact totals are in the HA status counters either way. Pure: the caller passes the clock.
 */
export class LogThrottle {
  private readonly keys = new Map<string, { until: number; repeats: number }>();
  /** Lines not written because of the throttle, over all keys. */
  suppressed = 0;

  constructor(private readonly everyMs: number) {}

  /**
   * One occurrence of `key` at `now`. Returns undefined when the line should not be written,
   * otherwise the number of occurrences not written since the last line of this key.
   */
  admit(key: string, now: number): number | undefined {
    const k = this.keys.get(key);
    if (k && now < k.until) { k.repeats++; this.suppressed++; return undefined; }
    const repeats = k?.repeats ?? 0;
    this.keys.set(key, { until: now + this.everyMs, repeats: 0 });
    return repeats;
  }
}
