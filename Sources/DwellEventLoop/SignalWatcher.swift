import CLibUV

/// Delivers a POSIX signal to a closure on the loop, through libuv's self-pipe,
/// so no Swift code runs inside the signal handler.
public final class SignalWatcher {
    private let handle: UnsafeMutablePointer<uv_signal_t>
    private var action: (Int32) -> Void
    private var isClosed = false

    public init(loop: EventLoop, signal: Int32, action: @escaping (Int32) -> Void) {
        self.action = action
        handle = .allocate(capacity: 1)
        uv_signal_init(loop.raw, handle)
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        uv_signal_start(
            handle,
            { handle, signum in
                let watcher = Unmanaged<SignalWatcher>.fromOpaque(handle!.pointee.data)
                    .takeUnretainedValue()
                watcher.action(signum)
            }, signal)
    }

    /// Lets the loop exit while only this watcher is active.
    public func unreference() {
        uv_unref(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self))
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        action = { _ in }
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { raw in
            Unmanaged<SignalWatcher>.fromOpaque(raw!.pointee.data!).release()
            raw!.withMemoryRebound(to: uv_signal_t.self, capacity: 1) { $0.deallocate() }
        }
    }
}
