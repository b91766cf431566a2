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
