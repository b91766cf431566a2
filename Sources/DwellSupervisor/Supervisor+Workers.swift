import CDwellShim
import DwellEventLoop
import Glibc

/// One listening socket and the worker processes serving it: normally one, two
/// during a rolling restart while the old worker drains.
final class WorkerSlot {
    let index: Int
    let listeningDescriptor: Int32
    var current: WorkerProcess?
    var retiring: [WorkerProcess] = []
    var restartDelayMilliseconds = Supervisor.minimumRestartDelay
    var restartTimer: LoopTimer?

    init(index: Int, listeningDescriptor: Int32) {
        self.index = index
        self.listeningDescriptor = listeningDescriptor
    }

    var liveWorkers: [WorkerProcess] {
        (current.map { [$0] } ?? []) + retiring
    }
}

final class WorkerProcess {
    let child: ChildProcess
    let startedAt: UInt64
    var lastBeatAt: UInt64
    var isReady = false
    var pipe: LivenessPipe?

    init(child: ChildProcess, startedAt: UInt64) {
        self.child = child
        self.startedAt = startedAt
        self.lastBeatAt = startedAt
    }
}

extension Supervisor {
    /// Starts a worker in `slot`; with `replacing` set, the new worker takes the
    /// slot over only once it is ready, and the old one drains then.
    func startWorker(in slot: WorkerSlot, replacing: WorkerProcess? = nil) {
        var pipeDescriptors: [Int32] = [-1, -1]
        let pipeStatus = dwell_pipe(&pipeDescriptors)
        guard pipeStatus == 0 else {
            Log.error(
                "supervisor.pipe_failed", ["slot": slot.index, "error": SystemError(call: "pipe2", errno: -pipeStatus)])
            scheduleRestart(of: slot)
            return
        }

        var workerBox: WorkerProcess?
        let child: ChildProcess
        do {
            child = try ChildProcess(
                loop: loop, program: executable,
                arguments: configuration.workerArguments(slot: slot.index, redisURL: redisURL),
                inheritedDescriptors: [slot.listeningDescriptor, pipeDescriptors[1]]
            ) { [unowned self] reason in
                if let worker = workerBox {
                    workerExited(worker, in: slot, reason: reason)
                }
            }
        } catch {
            close(pipeDescriptors[0])
            close(pipeDescriptors[1])
            Log.error("supervisor.spawn_failed", ["slot": slot.index, "error": error])
            scheduleRestart(of: slot)
            return
        }
        close(pipeDescriptors[1])

        let worker = WorkerProcess(child: child, startedAt: loop.nowMilliseconds)
        workerBox = worker
        worker.pipe = try? LivenessPipe(loop: loop, descriptor: pipeDescriptors[0]) { [unowned self] in
            beatReceived(from: worker, in: slot, replacing: replacing)
        }
        if replacing == nil {
            slot.current = worker
        } else {
            slot.retiring.append(worker)
        }
        Log.info("supervisor.worker_started", ["slot": slot.index, "pid": child.pid])
    }

    private func beatReceived(from worker: WorkerProcess, in slot: WorkerSlot, replacing old: WorkerProcess?) {
        worker.lastBeatAt = loop.nowMilliseconds
        guard !worker.isReady else { return }
        worker.isReady = true
        Log.info("supervisor.worker_ready", ["slot": slot.index, "pid": worker.child.pid])

        guard let old else { return }
        // The replacement accepts on the same socket, so the old worker can drain now.
        slot.retiring.removeAll { $0 === worker }
        if slot.current === old {
            slot.current = worker
            slot.retiring.append(old)
            old.child.signal(SIGTERM)
        } else {
            slot.current = worker
        }
    }

    private func workerExited(_ worker: WorkerProcess, in slot: WorkerSlot, reason: ChildProcess.ExitReason) {
        worker.pipe?.close()
        worker.pipe = nil
        let uptime = loop.nowMilliseconds - worker.startedAt

        if slot.current === worker {
            slot.current = nil
            if isStopping {
                Log.info("supervisor.worker_exit", ["slot": slot.index, "pid": worker.child.pid, "reason": reason])
            } else {
                if uptime >= Self.stableUptimeMilliseconds {
                    slot.restartDelayMilliseconds = Self.minimumRestartDelay
                }
                Log.error(
                    "supervisor.worker_exit",
                    [
                        "slot": slot.index, "pid": worker.child.pid, "reason": reason, "uptime_ms": uptime,
                        "restart_ms": slot.restartDelayMilliseconds,
                    ])
                scheduleRestart(of: slot)
            }
        } else {
            slot.retiring.removeAll { $0 === worker }
            Log.info("supervisor.worker_retired", ["slot": slot.index, "pid": worker.child.pid, "reason": reason])
            if isRolling, !worker.isReady || slot.current?.isReady == true {
                continueRollingRestart()
            }
        }
        finishIfDone()
    }

    func scheduleRestart(of slot: WorkerSlot) {
        guard !isStopping, slot.restartTimer == nil else { return }

        let delay = slot.restartDelayMilliseconds
        slot.restartDelayMilliseconds = min(delay * 2, Self.maximumRestartDelay)
        let timer = LoopTimer(loop: loop) { [unowned self] in
            slot.restartTimer?.close()
            slot.restartTimer = nil
            guard !isStopping, slot.current == nil else { return }
            startWorker(in: slot)
        }
        timer.start(afterMilliseconds: delay)
        slot.restartTimer = timer
    }

    /// Kills a worker whose loop stopped writing to its liveness pipe; its exit
    /// handler restarts the slot.
    func killStalledWorkers(now: UInt64) {
        let limit = UInt64(configuration.workerStallTimeoutSeconds * 1000)
        for slot in slots {
            for worker in slot.liveWorkers where now - worker.lastBeatAt > limit && !worker.child.hasExited {
                Log.error(
                    "supervisor.worker_stalled",
                    ["slot": slot.index, "pid": worker.child.pid, "silent_ms": now - worker.lastBeatAt])
                worker.child.signal(SIGKILL)
                worker.lastBeatAt = now
            }
        }
    }

    func beginShutdown(signal: Int32) {
        isStopping = true
        stopStartedAt = loop.nowMilliseconds
        Log.info("supervisor.stopping", ["signal": signal, "workers": liveWorkerCount])
        for slot in slots {
            slot.restartTimer?.close()
            slot.restartTimer = nil
            for worker in slot.liveWorkers {
                worker.child.signal(SIGTERM)
            }
        }
        finishIfDone()
    }

    /// Replaces the workers one slot at a time; each new worker is accepting
    /// before the old one of its slot starts to drain.
    func beginRollingRestart() {
        guard !isStopping else { return }
        guard !isRolling else {
            Log.warning("supervisor.restart_in_progress", [:])
            return
        }
        isRolling = true
        rollQueue = slots.map(\.index)
        Log.info("supervisor.rolling_restart", ["slots": slots.count])
        continueRollingRestart()
    }

    func continueRollingRestart() {
        guard !isStopping else { return }
        guard let index = rollQueue.first else {
            isRolling = false
            Log.info("supervisor.rolling_restart_done", [:])
            return
        }
        rollQueue.removeFirst()

        let slot = slots[index]
        if let old = slot.current {
            startWorker(in: slot, replacing: old)
        } else {
            continueRollingRestart()
        }
    }
}
