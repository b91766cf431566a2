/// Reconnect delays that double from a base up to a cap.
struct RedisBackoff: Equatable {
    let baseMilliseconds: UInt64
    let maxMilliseconds: UInt64

    init(baseMilliseconds: UInt64, maxMilliseconds: UInt64) {
        self.baseMilliseconds = max(baseMilliseconds, 1)
        self.maxMilliseconds = max(maxMilliseconds, self.baseMilliseconds)
    }

    /// Returns the delay before attempt `attempt`, counted from 1 after the last
    /// successful connect: `base * 2^(attempt - 1)`, capped at the maximum.
    func delay(forAttempt attempt: Int) -> UInt64 {
        let doublings = UInt64(min(max(attempt - 1, 0), 63))
        let (delay, overflow) = baseMilliseconds.multipliedReportingOverflow(by: 1 << doublings)
        return overflow ? maxMilliseconds : min(delay, maxMilliseconds)
    }

    /// Returns `delay(forAttempt:)` shortened by up to a fifth at random, so that workers
    /// that lost Redis together do not all reconnect in the same millisecond.
    func jitteredDelay(forAttempt attempt: Int) -> UInt64 {
        let delay = delay(forAttempt: attempt)
        return delay - UInt64.random(in: 0...(delay / 5))
    }
}
