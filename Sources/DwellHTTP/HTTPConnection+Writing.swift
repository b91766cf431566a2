import CLibUV
import DwellEventLoop

extension HTTPConnection {
    /// Encodes and queues a response, leaving out the body where HTTP has none.
    func write(
        _ response: HTTPResponse, isHead: Bool, connection: ResponseHead.ConnectionField,
        resumesParsing: Bool
    ) {
        var status = response.status
        if !(100...999).contains(status) {
            Log.error("http.invalid_status", ["connection": id, "status": status])
            status = 500
        }

        // RFC 9110 sections 8.6 and 15: 1xx and 204 carry no Content-Length. A 304
        // would have to repeat the selected representation's length, which is unknown
        // here, so it carries none either.
        let isBodyless = status < 200 || status == 204 || status == 304
        let head = ResponseHead.encode(
            status: status,
            headers: response.headers,
            contentLength: isBodyless ? nil : response.body.count,
            connection: connection,
            date: server.dateCache.current())
        let body = isBodyless || isHead || response.body.count == 0 ? nil : response.body

        hasResponded = true
        server.responseWritten(status: status)
        enqueueWrite(head: head, body: body, resumesParsing: resumesParsing)
    }

    /// Sends a JSON error response that the server produced itself, then closes.
    func sendServerError(status: Int, message: String) {
        write(
            HTTPResponse.error(status: status, message: message), isHead: false, connection: .close,
            resumesParsing: false)
        beginClosing()
    }

    /// Queues `head` and `body` as one uv_write of up to two buffers, without copying
    /// the shared body, and closes the connection when its write queue exceeds
    /// `maxQueuedWriteBytes`.
    func enqueueWrite(head: [UInt8]?, body: SharedBytes?, resumesParsing: Bool) {
        guard phase != .closed else { return }

        let request = WriteRequest(connection: self, head: head, body: body, resumesParsing: resumesParsing)
        let status = request.start(on: tcp.stream)
        guard status == 0 else {
            // EPIPE, ECONNRESET and the like: the client is gone.
            Log.debug(
                "http.write_failed", ["connection": id, "error": SystemError(call: "uv_write", uvStatus: status)])
            close()
            return
        }

        writesInProgress += 1
        if writesInProgress == 1 {
            setWriteDeadline(after: server.limits.writeTimeoutMilliseconds)
        }

        let queued = uv_stream_get_write_queue_size(tcp.stream)
        if queued > server.limits.maxQueuedWriteBytes {
            Log.debug("http.write_queue_full", ["connection": id, "queued_bytes": queued])
            close()
        }
    }

    /// Handles a finished write: a failure closes the connection, and a written
    /// response lets pipelined requests be parsed.
    fileprivate func writeCompleted(status: Int32, resumesParsing: Bool) {
        writesInProgress -= 1
        guard phase != .closed else { return }

        guard status == 0 else {
            Log.debug("http.write_failed", ["connection": id, "error": SystemError(call: "write", uvStatus: status)])
            close()
            return
        }

        if writesInProgress > 0 {
            setWriteDeadline(after: server.limits.writeTimeoutMilliseconds)
        } else {
            writeDeadline = 0
        }
        if resumesParsing, phase == .open {
            resumeParsing()
        }
    }

    /// Stops serving requests and ends the connection gracefully: the queued writes
    /// drain, the write side shuts down, and the server discards what the client
    /// still sends until it closes or the linger timeout passes. Reading on after the
    /// response keeps the kernel from replying to the client's unread bytes with a TCP
    /// reset, which could destroy the response before the client reads it.
    func beginClosing() {
        guard phase == .open else { return }
        guard !hasRequestInFlight else {
            close()
            return
        }

        phase = .closing
        isParsingSuspended = false
        decoder = nil
        pending = []
        pendingStart = 0
        readDeadline = 0

        let shutdown = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        shutdown.pointee.data = Unmanaged.passRetained(self).toOpaque()
        let status = uv_shutdown(shutdown, tcp.stream) { request, status in
            guard let request else { return }
            let connection = Unmanaged<HTTPConnection>.fromOpaque(request.pointee.data).takeRetainedValue()
            request.deallocate()
            connection.shutdownCompleted(status: status)
        }
        guard status == 0 else {
            Unmanaged<HTTPConnection>.fromOpaque(shutdown.pointee.data).release()
            shutdown.deallocate()
            close()
            return
        }
        startReading()
    }

    private func shutdownCompleted(status: Int32) {
        guard phase == .closing else { return }

        if status != 0 || isPeerClosed {
            close()
            return
        }
        setReadDeadline(.linger, after: server.limits.lingerTimeoutMilliseconds)
    }
}

/// One queued uv_write: the libuv request, a private copy of the head, and a
/// reference that keeps the shared body alive until libuv reports the write done.
private final class WriteRequest {
    let request: UnsafeMutablePointer<uv_write_t>
    let connection: HTTPConnection
    let head: UnsafeMutableRawBufferPointer?
    let body: SharedBytes?
    let resumesParsing: Bool

    init(connection: HTTPConnection, head: [UInt8]?, body: SharedBytes?, resumesParsing: Bool) {
        self.connection = connection
        self.body = body
        self.resumesParsing = resumesParsing
        request = .allocate(capacity: 1)
        if let head, !head.isEmpty {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: head.count, alignment: 1)
            copy.copyBytes(from: head)
            self.head = copy
        } else {
            self.head = nil
        }
    }

    deinit {
        head?.deallocate()
        request.deallocate()
    }

    /// Starts the write and returns libuv's status. On success the request keeps
    /// itself alive through `request.data` until the write callback.
    func start(on stream: UnsafeMutablePointer<uv_stream_t>) -> Int32 {
        var buffers: [uv_buf_t] = []
        if let head, let base = head.baseAddress {
            buffers.append(uv_buf_init(base.assumingMemoryBound(to: CChar.self), UInt32(head.count)))
        }
        if let body, let base = body.baseAddress {
            // libuv only reads from the buffer, although its C signature takes a mutable pointer.
            buffers.append(uv_buf_init(base.assumingMemoryBound(to: CChar.self), UInt32(body.count)))
        }
        guard !buffers.isEmpty else { return UV_EINVAL.rawValue }

        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        // uv_write copies the buffer descriptors, so the array may go after the call.
        let status = uv_write(request, stream, buffers, UInt32(buffers.count)) { request, status in
            guard let request else { return }
            let write = Unmanaged<WriteRequest>.fromOpaque(request.pointee.data).takeRetainedValue()
            write.connection.writeCompleted(status: status, resumesParsing: write.resumesParsing)
        }
        if status != 0 {
            Unmanaged<WriteRequest>.fromOpaque(request.pointee.data).release()
        }
        return status
    }
}
