import DwellEventLoop

/// Header, idle, body, linger and write deadlines, checked through one entry per
/// connection in the server's timer wheel instead of a libuv timer each.
extension HTTPConnection {
    func setReadDeadline(_ kind: ReadDeadlineKind, after milliseconds: UInt64) {
        readDeadlineKind = kind
        readDeadline = server.loop.nowMilliseconds + milliseconds
        armDeadlineCheck()
    }

    func setWriteDeadline(after milliseconds: UInt64) {
        writeDeadline = server.loop.nowMilliseconds + milliseconds
        armDeadlineCheck()
    }

    /// Makes sure a wheel entry is due no later than the earliest deadline.
    ///
    /// An entry is due at most `server.deadlineCheckInterval` ahead, the shortest of
    /// the header, idle and write timeouts. Those deadlines are set at least that far
    /// ahead, so they never need a new entry and leave no stale entry behind. Only a
    /// linger deadline shorter than the interval adds a second entry.
    func armDeadlineCheck() {
        let deadline = earliestDeadline
        guard deadline != 0 else { return }
        if scheduledCheck != 0, scheduledCheck <= deadline {
            return
        }

        let checkAt = min(deadline, server.loop.nowMilliseconds + server.deadlineCheckInterval)
        deadlineToken &+= 1
        scheduledCheck = checkAt
        server.scheduleDeadlineCheck(for: self, token: deadlineToken, at: checkAt)
    }

    /// Handles this connection's wheel entry: acts on a passed deadline or schedules
    /// the next check.
    func deadlineCheckDue(now: UInt64) {
        scheduledCheck = 0
        guard phase != .closed else { return }

        if writeDeadline != 0, now >= writeDeadline {
            Log.debug("http.write_timeout", ["connection": id])
            close()
        } else if readDeadline != 0, now >= readDeadline {
            readDeadlinePassed()
        } else {
            armDeadlineCheck()
        }
    }

    private var earliestDeadline: UInt64 {
        switch (readDeadline, writeDeadline) {
        case (0, let write): write
        case (let read, 0): read
        case (let read, let write): min(read, write)
        }
    }

    private func readDeadlinePassed() {
        readDeadline = 0
        switch readDeadlineKind {
        case .header, .body:
            Log.debug("http.request_timeout", ["connection": id, "phase": readDeadlineKind])
            // A 408 explains the close to a client that sent part of its first request.
            // A connection that sent nothing, or that already received a response,
            // is closed quietly, as after a keep-alive timeout.
            let hasPartialRequest = decoder?.isRequestStarted == true
            if phase == .open, hasPartialRequest, !hasResponded, writesInProgress == 0 {
                sendServerError(status: 408, message: "request timed out before it was complete")
            } else {
                close()
            }
        case .idle:
            close()
        case .linger:
            close()
        }
    }
}
