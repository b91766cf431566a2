import DwellCore
import DwellEventLoop
import DwellHTTP

/// Draining: stop accepting, answer every held poll at once so its client polls
/// another worker, and exit when the connections are gone or the drain times out.
extension Worker {
    func beginDrain(signal: Int32) {
        isDraining = true
        drainStartedAt = loop.nowMilliseconds
        Log.info("worker.draining", ["signal": signal, "held_polls": polls.count])

        server?.stopAccepting()
        deregister()
        for poll in polls.allElements {
            answerWithTimeout(poll, outcome: .drain)
        }
        server?.closeIdleConnections()

        // Connections close as their answers flush; check often so the exit is prompt.
        let timer = LoopTimer(loop: loop) { [unowned self] in checkDrain(now: loop.nowMilliseconds) }
        timer.start(afterMilliseconds: 20, repeatMilliseconds: 20)
        drainTimer = timer
    }

    func checkDrain(now: UInt64) {
        server?.closeIdleConnections()
        let remaining = server?.connectionCount ?? 0
        if remaining == 0 {
            finish()
        } else if now - drainStartedAt >= configuration.drainTimeoutMilliseconds {
            Log.warning("worker.drain_timeout", ["connections": remaining])
            finish()
        }
    }
}
