/// A cumulative histogram of delivery latency in milliseconds, from the time
/// Redis stamped a message to the time a worker wrote it to a poll.
///
/// The latency spans two clocks (Redis's and the worker's), so clock skew
/// between machines shifts it; on one machine both clocks are the same.
struct LatencyHistogram {
    static let boundsMilliseconds: [UInt64] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000]

    /// Observations at or below each bound, then the total in the last slot.
    private(set) var cumulativeCounts = [UInt64](repeating: 0, count: boundsMilliseconds.count + 1)
    private(set) var sumMilliseconds: UInt64 = 0

    var count: UInt64 { cumulativeCounts[cumulativeCounts.count - 1] }

    mutating func observe(_ milliseconds: UInt64, times: UInt64 = 1) {
        for (index, bound) in Self.boundsMilliseconds.enumerated() where milliseconds <= bound {
            cumulativeCounts[index] += times
        }
        cumulativeCounts[cumulativeCounts.count - 1] += times
        sumMilliseconds += milliseconds * times
    }
}
