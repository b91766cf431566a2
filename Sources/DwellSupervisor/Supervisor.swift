import CDwellShim
import DwellEventLoop
import Glibc

/// The process that `dwell serve` runs: it owns the listening sockets, forks one
/// worker per slot, replaces workers that exit or stall, and drains or rolls them
/// on signals.
///
/// Each slot has its own `SO_REUSEPORT` socket that the supervisor keeps open,
/// so connections that arrive while a slot's worker restarts wait in the kernel
/// queue for the next worker instead of being refused.
public final class Supervisor {
    static let maintenanceMilliseconds: UInt64 = 500
    static let minimumRestartDelay: UInt64 = 100
    static let maximumRestartDelay: UInt64 = 30_000
    /// A worker that stayed up this long resets its slot's crash backoff.
    static let stableUptimeMilliseconds: UInt64 = 10_000

    let loop: EventLoop
    let configuration: ServeConfiguration
    let executable: String
    var slots: [WorkerSlot] = []
    var redis: EmbeddedRedis?
    var redisURL = ""
    var isStopping = false
    var stopStartedAt: UInt64 = 0
    var rollQueue: [Int] = []
    var isRolling = false
    private var signalWatchers: [SignalWatcher] = []
    private var maintenanceTimer: LoopTimer?

    public init(loop: EventLoop, configuration: ServeConfiguration, executable: String) {
        self.loop = loop
        self.configuration = configuration
        self.executable = executable
    }

    /// Runs until shutdown; returns the exit status (0 after a clean drain,
    /// 1 when the server could not start).
    public func run() -> Int32 {
        dwell_ignore_sigpipe()
        do {
            try openSlots()
            try startRedis()
        } catch {
            Log.error("supervisor.start_failed", ["error": error])
            closeSlots()
            redis?.stop {}
            return 1
        }

        watchSignals()
        for slot in slots {
            startWorker(in: slot)
        }
        let timer = LoopTimer(loop: loop) { [unowned self] in performMaintenance() }
        timer.start(afterMilliseconds: Self.maintenanceMilliseconds, repeatMilliseconds: Self.maintenanceMilliseconds)
        maintenanceTimer = timer

        Log.info(
            "supervisor.ready",
            ["host": configuration.host, "port": boundPort, "workers": slots.count, "redis": redisURL])
        loop.run()
        Log.info("supervisor.exit", ["status": 0])
        return 0
    }

    private func openSlots() throws(SystemError) {
        guard configuration.workers >= 1 else {
            throw SystemError(call: "--workers \(configuration.workers): at least 1 worker is required", errno: EINVAL)
        }
        var port = configuration.port
        if port != 0 {
            // SO_REUSEPORT would let this server share a port that another Dwell
            // (or any program of this user with SO_REUSEPORT) already serves, so
            // first try the port alone, which fails when anyone listens on it.
            var failedCall: UnsafePointer<CChar>?
            let probe = dwell_listen_tcp(configuration.host, Int32(port), 1, 0, &failedCall)
            guard probe >= 0 else {
                let call = failedCall.map { String(cString: $0) } ?? "listen"
                throw SystemError(call: "\(call) \(configuration.host):\(port)", errno: -probe)
            }
            close(probe)
        }
        for index in 0..<configuration.workers {
            var failedCall: UnsafePointer<CChar>?
            let descriptor = dwell_listen_tcp(configuration.host, Int32(port), 1024, 1, &failedCall)
            guard descriptor >= 0 else {
                let call = failedCall.map { String(cString: $0) } ?? "listen"
                throw SystemError(call: "\(call) \(configuration.host):\(port)", errno: -descriptor)
            }
            if port == 0 {
                // Every slot must share the port that the kernel picked for the first.
                port = Int(dwell_local_port(descriptor))
            }
            slots.append(WorkerSlot(index: index, listeningDescriptor: descriptor))
        }
        boundPort = port
    }

    /// The port the slots listen on; differs from the configuration only for port 0.
    public private(set) var boundPort = 0

    private func closeSlots() {
        for slot in slots {
            close(slot.listeningDescriptor)
        }
    }

    private func startRedis() throws(SystemError) {
        if let url = configuration.redisURL {
            redisURL = url
            return
        }
        let embedded = try EmbeddedRedis(
            loop: loop, program: configuration.redisServerProgram, dataDirectory: configuration.dataDirectory)
        redis = embedded
        try embedded.start()
        redisURL = embedded.url
    }

    private func watchSignals() {
        for number in [SIGTERM, SIGINT] {
            signalWatchers.append(
                SignalWatcher(loop: loop, signal: number) { [unowned self] signal in
                    if isStopping {
                        Log.warning("supervisor.stop_now", ["signal": signal])
                        killAll()
                    } else {
                        beginShutdown(signal: signal)
                    }
                })
        }
        signalWatchers.append(
            SignalWatcher(loop: loop, signal: SIGHUP) { [unowned self] _ in beginRollingRestart() })
    }

    private func performMaintenance() {
        let now = loop.nowMilliseconds
        killStalledWorkers(now: now)
        if isStopping, now - stopStartedAt >= UInt64(configuration.drainTimeoutSeconds * 1000) + 1_000 {
            Log.warning("supervisor.drain_timeout", ["workers": liveWorkerCount])
            killAll()
        }
    }

    var liveWorkerCount: Int {
        slots.reduce(0) { $0 + $1.liveWorkers.count }
    }

    func killAll() {
        for slot in slots {
            for worker in slot.liveWorkers {
                worker.child.signal(SIGKILL)
            }
        }
    }

    /// Ends the loop once every worker and the private Redis are gone.
    func finishIfDone() {
        guard isStopping, liveWorkerCount == 0 else { return }

        closeSlots()
        let stopLoop = { [unowned self] in
            maintenanceTimer?.close()
            for watcher in signalWatchers {
                watcher.close()
            }
            signalWatchers.removeAll()
            loop.stop()
        }
        if let redis {
            redis.stop(completion: stopLoop)
        } else {
            stopLoop()
        }
    }
}
