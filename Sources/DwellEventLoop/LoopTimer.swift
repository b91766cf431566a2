import CLibUV

/// A libuv timer that calls a closure; repeat or one-shot.
///
/// The timer keeps itself alive while its handle is open and frees the handle
/// in the close callback, so dropping the last reference without `close()`
/// leaks the handle: call `close()` when done.
public final class LoopTimer {
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private var action: () -> Void
    private var isClosed = false

    public init(loop: EventLoop, action: @escaping () -> Void) {
        self.action = action
        handle = .allocate(capacity: 1)
        uv_timer_init(loop.raw, handle)
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// Starts the timer: first after `afterMilliseconds`, then every
    /// `repeatMilliseconds` unless it is 0.
    public func start(afterMilliseconds: UInt64, repeatMilliseconds: UInt64 = 0) {
        precondition(!isClosed, "LoopTimer.start after close")
        uv_timer_start(
            handle,
            { handle in
                let timer = Unmanaged<LoopTimer>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
                timer.action()
            }, afterMilliseconds, repeatMilliseconds)
    }

    public func stop() {
        guard !isClosed else { return }
        uv_timer_stop(handle)
    }

    /// Lets the loop exit while only this timer is active.
    public func unreference() {
        uv_unref(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self))
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        action = {}
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { raw in
            let timer = raw!.pointee.data!
            Unmanaged<LoopTimer>.fromOpaque(timer).release()
            raw!.withMemoryRebound(to: uv_timer_t.self, capacity: 1) { $0.deallocate() }
        }
    }
}
