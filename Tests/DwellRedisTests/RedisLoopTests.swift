import DwellEventLoop
import Testing

/// Parent of every suite that drives the loop. All of them share one private loop,
/// so they must never run at the same time.
@Suite(.serialized)
struct RedisLoopTests {
    /// A loop of the Redis tests' own: the HTTP tests run on the default loop,
    /// possibly at the same time on another thread.
    nonisolated(unsafe) static let loop = EventLoop.makePrivate()
}
