/// At most one admitted event per key per interval; the events refused meanwhile are counted and
/// reported with the next one admitted. Keys are bounded by what the caller passes (neighbour ×
/// reason code), so the table stays small under a flood.
struct RateLimiter {
    let interval: Duration
    private var last: [String: (time: Duration, suppressed: Int)] = [:]

    init(interval: Duration) { self.interval = interval }

    /// `nil` when the event is suppressed; otherwise how many were suppressed since the last one.
    mutating func admit(_ key: String, now: Duration) -> Int? {
        if let entry = last[key], now - entry.time < interval {
            last[key]!.suppressed += 1
            return nil
        }
        let suppressed = last[key]?.suppressed ?? 0
        last[key] = (now, 0)
        return suppressed
    }
}
