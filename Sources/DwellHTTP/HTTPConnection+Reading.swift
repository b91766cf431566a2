import CLibUV
import DwellEventLoop

extension HTTPConnection {
    func startReading() {
        guard !isReading, !isPeerClosed, phase != .closed else { return }

        let status = uv_read_start(
            tcp.stream,
            { handle, _, buffer in
                // Every connection reads into its server's one buffer, because the read
                // callback consumes or copies the bytes before libuv reads again. libuv
                // always passes the handle and the buffer, and the shared buffer is never empty.
                let connection = Unmanaged<HTTPConnection>.fromOpaque(handle!.pointee.data)
                    .takeUnretainedValue()
                let shared = connection.server.readBuffer
                buffer!.pointee = uv_buf_init(
                    shared.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(shared.count))
            },
            { stream, count, _ in
                // libuv always passes the stream, whose `data` the connection's init set.
                let connection = Unmanaged<HTTPConnection>.fromOpaque(stream!.pointee.data)
                    .takeUnretainedValue()
                connection.readCompleted(count)
            })
        guard status == 0 else {
            Log.debug(
                "http.read_start_failed",
                ["connection": id, "error": SystemError(call: "uv_read_start", uvStatus: status)])
            close()
            return
        }
        isReading = true
    }

    func stopReading() {
        guard isReading else { return }
        uv_read_stop(tcp.stream)
        isReading = false
    }

    /// Handles one read: `count` bytes at the start of the shared buffer, or a
    /// negative libuv status.
    private func readCompleted(_ count: Int) {
        if count > 0 {
            bytesReceived(UnsafeRawBufferPointer(rebasing: server.readBuffer[0..<count]))
        } else if count == Int(UV_EOF.rawValue) {
            isReading = false
            isPeerClosed = true
            endOfStreamReceived()
        } else if count < 0 {
            // ECONNRESET and the like: the client is gone, so no response can reach it.
            Log.debug(
                "http.read_failed", ["connection": id, "error": SystemError(call: "read", uvStatus: Int32(count))])
            close()
        }
        // A count of 0 is EAGAIN: nothing to do.
    }

    private func bytesReceived(_ bytes: UnsafeRawBufferPointer) {
        switch phase {
        case .closed, .closing:
            // After the last response the server discards what the client still sends.
            return
        case .open:
            break
        }

        guard !isParsingSuspended else {
            buffer(bytes)
            return
        }

        let consumed = process(bytes)
        if phase == .open, consumed < bytes.count {
            pending = Array(bytes[consumed...])
            pendingStart = 0
        }
    }

    /// Keeps pipelined bytes that arrive while a request is in flight, and stops
    /// reading when more than `maxPendingBytes` wait.
    private func buffer(_ bytes: UnsafeRawBufferPointer) {
        if pendingStart > 0 {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
        pending.append(contentsOf: bytes)
        if pending.count > server.limits.maxPendingBytes {
            // Reading resumes after the response, and until then a disconnect goes unnoticed.
            stopReading()
        }
    }

    /// Closes the connection after the client ended its side, abandoning the request
    /// in flight, but lets a response still being written finish first.
    private func endOfStreamReceived() {
        if phase == .open, !hasRequestInFlight, writesInProgress > 0 {
            beginClosing()
        } else {
            close()
        }
    }

    /// Parses `bytes` until a request is delivered, the connection is rejected or the
    /// bytes run out, and returns how many bytes were consumed.
    func process(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count, phase == .open, !isParsingSuspended, let decoder {
            let (consumed, outcome) = decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            offset += consumed

            switch outcome {
            case .needsMoreInput:
                requestProgressed(decoder)
            case .request(let request):
                deliver(request, isUpgrade: decoder.isUpgradeRequested)
                return offset
            case .failure(let error):
                Log.debug("http.request_rejected", ["connection": id, "status": error.status, "reason": error.message])
                sendServerError(status: error.status, message: error.message)
                return offset
            }
        }
        return offset
    }

    /// Parses the bytes that waited behind a request whose response is now written,
    /// then resumes reading.
    func resumeParsing() {
        isParsingSuspended = false
        if server.isDraining {
            beginClosing()
            return
        }

        if pendingStart < pending.count {
            // A copy, because the handler may close the connection and clear `pending`.
            let buffered = pending
            let start = pendingStart
            let consumed = buffered.withUnsafeBytes { bytes in
                process(UnsafeRawBufferPointer(rebasing: bytes[start...]))
            }
            guard phase == .open else { return }
            pendingStart += consumed
        }

        if pendingStart >= pending.count {
            pending = []
            pendingStart = 0
        }
        if !isParsingSuspended {
            startReading()
            if decoder?.isRequestStarted != true {
                setReadDeadline(.idle, after: server.limits.idleTimeoutMilliseconds)
            }
        }
    }

    /// Sends `100 Continue` when due and moves the read deadline along with the
    /// request. The header deadline runs from the request's first byte and the body
    /// deadline from the end of the headers, and neither is extended by later
    /// reads, so a client that trickles bytes cannot hold the connection.
    private func requestProgressed(_ decoder: RequestDecoder) {
        if decoder.takeContinueExpectation() {
            enqueueWrite(head: nil, body: HTTPConnection.continueResponse, resumesParsing: false)
        }

        if decoder.areHeadersComplete {
            if readDeadlineKind != .body || readDeadline == 0 {
                setReadDeadline(.body, after: server.limits.bodyTimeoutMilliseconds)
            }
        } else if decoder.isRequestStarted, readDeadlineKind != .header || readDeadline == 0 {
            setReadDeadline(.header, after: server.limits.headerTimeoutMilliseconds)
        }
    }

    private func deliver(_ request: HTTPRequest, isUpgrade: Bool) {
        hasRequestInFlight = true
        isParsingSuspended = true
        inFlightIsHead = request.method == .head
        // After an upgrade or CONNECT request http-parser parses nothing more, so the
        // connection cannot carry another request.
        inFlightKeepsAlive = request.keepAlive && !isUpgrade
        inFlightIsHTTP10 = request.versionMinor == 0
        readDeadline = 0

        guard let delegate = server.delegate else {
            respond(HTTPResponse.error(status: 503, message: "server is shutting down"))
            return
        }
        delegate.server(server, received: request, on: self)
    }

    static let continueResponse = SharedBytes("HTTP/1.1 100 Continue\r\n\r\n")
}
