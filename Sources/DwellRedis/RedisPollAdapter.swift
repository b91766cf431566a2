import CHiredis
import CLibUV

/// The hiredis event hooks on a libuv poll handle, used in place of `redisLibuvAttach`.
///
/// The adapter in hiredis 0.14.1 (`adapters/libuv.h`) returns from its poll callback
/// without telling hiredis when libuv passes an error status. libuv 1.44 does exactly
/// that for POLLERR, after stopping the handle (`uv__poll_io` in `src/unix/poll.c`).
/// POLLERR is what a refused connect and a reset connection produce, so with that
/// adapter hiredis would wait on a dead socket until some timeout. This adapter makes
/// hiredis read and write on an error status instead, and the failing call reports the
/// socket error, as the upstream fix (hiredis commit 9ce15c4, after 0.14.1) does.
///
/// The hooks must be idempotent (hiredis calls `addRead` after every read). Use it only
/// on the loop thread.
final class RedisPollAdapter {
    private let handle: UnsafeMutablePointer<uv_poll_t>
    /// Cleared by the cleanup hook, because hiredis may free the context during a read.
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    /// The `uv_poll_event` bits hiredis asked for.
    private var events: Int32 = 0

    private static let readable = Int32(UV_READABLE.rawValue)
    private static let writable = Int32(UV_WRITABLE.rawValue)

    private init(handle: UnsafeMutablePointer<uv_poll_t>, context: UnsafeMutablePointer<redisAsyncContext>) {
        self.handle = handle
        self.context = context
    }

    /// Installs the hooks on `context`, or returns false when libuv cannot poll its
    /// socket.
    ///
    /// The context's `ev.data` holds one retained reference to the adapter, released
    /// when the poll handle finishes closing after hiredis calls the cleanup hook.
    static func attach(
        _ context: UnsafeMutablePointer<redisAsyncContext>, to loop: UnsafeMutablePointer<uv_loop_t>
    ) -> Bool {
        guard context.pointee.ev.data == nil else { return false }

        let handle = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
        guard uv_poll_init(loop, handle, context.pointee.c.fd) == 0 else {
            // A failed uv_poll_init registers nothing with the loop.
            handle.deallocate()
            return false
        }

        let adapter = Unmanaged.passRetained(RedisPollAdapter(handle: handle, context: context)).toOpaque()
        handle.pointee.data = adapter
        context.pointee.ev.data = adapter
        context.pointee.ev.addRead = { data in RedisPollAdapter.from(data).enable(RedisPollAdapter.readable) }
        context.pointee.ev.delRead = { data in RedisPollAdapter.from(data).disable(RedisPollAdapter.readable) }
        context.pointee.ev.addWrite = { data in RedisPollAdapter.from(data).enable(RedisPollAdapter.writable) }
        context.pointee.ev.delWrite = { data in RedisPollAdapter.from(data).disable(RedisPollAdapter.writable) }
        context.pointee.ev.cleanup = { data in RedisPollAdapter.from(data).detach() }
        return true
    }

    private static func from(_ data: UnsafeMutableRawPointer?) -> RedisPollAdapter {
        // hiredis passes back the `ev.data` set in `attach`, which is never nil.
        Unmanaged<RedisPollAdapter>.fromOpaque(data!).takeUnretainedValue()
    }

    private var rawHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    private func enable(_ event: Int32) {
        // After an error, libuv has stopped the handle although `events` still lists the
        // event, so the handle's activity decides whether to restart it.
        if events & event != 0, uv_is_active(rawHandle) != 0 {
            return
        }
        events |= event
        startPolling()
    }

    private func disable(_ event: Int32) {
        guard events & event != 0 else { return }
        events &= ~event
        if events == 0 {
            uv_poll_stop(handle)
        } else {
            startPolling()
        }
    }

    private func startPolling() {
        uv_poll_start(handle, events) { handle, status, readyEvents in
            guard let data = handle?.pointee.data else { return }
            let adapter = Unmanaged<RedisPollAdapter>.fromOpaque(data).takeUnretainedValue()
            adapter.pollFired(status: status, readyEvents: readyEvents)
        }
    }

    private func pollFired(status: Int32, readyEvents: Int32) {
        let ready = status < 0 ? events : readyEvents
        if ready & Self.readable != 0, let context {
            redisAsyncHandleRead(context)
        }
        // The read may have freed the context, which clears `context` through cleanup.
        if ready & Self.writable != 0, let context {
            redisAsyncHandleWrite(context)
        }
    }

    /// The cleanup hook: hiredis is freeing the context and calls no hook after this.
    private func detach() {
        context = nil
        events = 0
        uv_close(rawHandle) { closed in
            guard let closed, let data = closed.pointee.data else { return }
            Unmanaged<RedisPollAdapter>.fromOpaque(data).release()
            closed.withMemoryRebound(to: uv_poll_t.self, capacity: 1) { $0.deallocate() }
        }
    }
}
