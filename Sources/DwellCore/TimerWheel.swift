/// Deadlines grouped into buckets of one tick each, so that tens of thousands of
/// held polls cost one loop timer instead of one timer apiece.
///
/// The wheel has no clock: callers pass the time in milliseconds of any
/// monotonic clock. A deadline may fire up to one tick early, never late by
/// more than the caller's expiry interval. Cancellation is lazy: each entry
/// carries the token the caller gave it, and the caller ignores an expired
/// entry whose token no longer matches its element's current one.
public struct TimerWheel<Element: AnyObject> {
    public struct Entry {
        public let element: Element
        public let token: UInt32
    }

    public let tickMilliseconds: UInt64
    private var buckets: [UInt64: [Entry]] = [:]
    /// The last tick whose bucket was expired; new entries go at least one tick later.
    private var expiredThrough: UInt64

    public private(set) var count = 0

    public init(tickMilliseconds: UInt64, now: UInt64) {
        precondition(tickMilliseconds > 0, "TimerWheel tick must be positive")
        self.tickMilliseconds = tickMilliseconds
        expiredThrough = now / tickMilliseconds
    }

    /// Adds an entry due at `deadline` (milliseconds on the caller's clock).
    public mutating func schedule(_ element: Element, token: UInt32, at deadline: UInt64) {
        let tick = max(deadline / tickMilliseconds, expiredThrough + 1)
        buckets[tick, default: []].append(Entry(element: element, token: token))
        count += 1
    }

    /// Removes and returns every entry due at or before `now`, oldest bucket first.
    public mutating func expire(now: UInt64) -> [Entry] {
        let target = now / tickMilliseconds
        guard target > expiredThrough else { return [] }

        var due: [Entry] = []
        if buckets.count < Int(target - expiredThrough) {
            // After a long stall, visiting the few non-empty buckets beats walking every tick.
            for tick in buckets.keys.sorted() where tick <= target {
                due.append(contentsOf: buckets.removeValue(forKey: tick) ?? [])
            }
        } else {
            var tick = expiredThrough + 1
            while tick <= target {
                if let bucket = buckets.removeValue(forKey: tick) {
                    due.append(contentsOf: bucket)
                }
                tick += 1
            }
        }
        expiredThrough = target
        count -= due.count
        return due
    }
}
