import CLibUV

/// One libuv loop, the single thread on which a worker or supervisor runs.
///
/// Every handle created on a loop must be used only from that loop's thread.
public final class EventLoop {
    /// The libuv loop; only the wrappers of this package touch it.
    package let raw: UnsafeMutablePointer<uv_loop_t>

    /// Wraps the process's default loop.
    public init() {
        raw = uv_default_loop()
    }

    private init(raw: UnsafeMutablePointer<uv_loop_t>) {
        self.raw = raw
    }

    /// Creates a loop of its own, separate from the default loop, for code that
    /// must not share a loop with other threads (tests that run side by side).
    ///
    /// The loop is never freed, so create one per thread, not one per request.
    public static func makePrivate() -> EventLoop {
        let raw = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let status = uv_loop_init(raw)
        precondition(status == 0, "uv_loop_init failed with status \(status)")
        return EventLoop(raw: raw)
    }

    /// Runs until no active handle is left or `stop()` is called.
    public func run() {
        uv_run(raw, UV_RUN_DEFAULT)
    }

    /// Runs one iteration without blocking; for tests that drive the loop by hand.
    public func runOnce(blocking: Bool) {
        uv_run(raw, blocking ? UV_RUN_ONCE : UV_RUN_NOWAIT)
    }

    /// Makes `run()` return after the current iteration.
    public func stop() {
        uv_stop(raw)
    }

    /// The loop's cached monotonic time in milliseconds, updated once per iteration.
    public var nowMilliseconds: UInt64 {
        uv_now(raw)
    }

    /// Refreshes the cached time; useful after long synchronous work.
    public func updateTime() {
        uv_update_time(raw)
    }
}
