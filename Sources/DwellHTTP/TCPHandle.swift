import CLibUV

/// Views of a libuv TCP handle as the base types that libuv's stream and handle calls take.
extension UnsafeMutablePointer where Pointee == uv_tcp_t {
    var stream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_stream_t.self)
    }

    var handle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_handle_t.self)
    }
}

/// Closes a TCP handle that has no owner attached, and frees it in the close callback.
func closeUnownedHandle(_ tcp: UnsafeMutablePointer<uv_tcp_t>) {
    uv_close(tcp.handle) { handle in
        handle?.withMemoryRebound(to: uv_tcp_t.self, capacity: 1) { $0.deallocate() }
    }
}
