import DwellCore
import DwellEventLoop
import DwellHTTP
import DwellRedis
import Glibc

/// One worker process: an HTTP server, two Redis connections and the held polls,
/// all on one libuv loop.
///
/// Call every method on the loop thread. Nothing here blocks the loop: Redis is
/// asynchronous and every deadline is an entry in a timer wheel.
public final class Worker {
    static let tickMilliseconds: UInt64 = 100
    static let maintenanceMilliseconds: UInt64 = 1_000

    let loop: EventLoop
    let configuration: WorkerConfiguration
    let serverID: String
    let commands: RedisConnection
    let subscriber: RedisSubscriber
    var server: HTTPServer?

    var polls = ChannelIndex<HeldPoll>()
    var deadlines: TimerWheel<HeldPoll>
    /// Channels still subscribed with no poll left, and since when (loop milliseconds).
    var idleChannels: [String: UInt64] = [:]
    var counters = WorkerCounters()
    var probe = ProbeState()
    var isDraining = false
    var drainStartedAt: UInt64 = 0
    var exitStatus: Int32 = 0
    var isFinished = false
    /// Local poll counts per user; Redis holds the cluster-wide ones.
    var userPolls: [String: Int] = [:]
    /// Users with no poll left here, and since when, until their mapping expires.
    var userGraceSince: [String: UInt64] = [:]
    var registryTimers: [LoopTimer] = []
    var hasRegistered = false
    /// The data set's epoch at the last heartbeat; nil before the first one.
    var knownEpoch: String?
    let startedAtWallMilliseconds = Worker.wallClockMilliseconds()
    var deliveryLatency = LatencyHistogram()

    private var tickTimer: LoopTimer?
    private var maintenanceTimer: LoopTimer?
    private var signalWatchers: [SignalWatcher] = []

    public init(loop: EventLoop, configuration: WorkerConfiguration) {
        self.loop = loop
        self.configuration = configuration
        self.serverID = Self.makeServerID(slot: configuration.slot)
        self.commands = RedisConnection(loop: loop, endpoint: configuration.redis, name: "commands")
        self.subscriber = RedisSubscriber(loop: loop, endpoint: configuration.redis)
        self.deadlines = TimerWheel(tickMilliseconds: Self.tickMilliseconds, now: loop.nowMilliseconds)
    }

    /// Serves until drained by SIGTERM or SIGINT; returns the process exit status.
    public func run() throws -> Int32 {
        let server = HTTPServer(
            loop: loop, listeningDescriptor: configuration.listeningDescriptor,
            limits: configuration.http, delegate: self)
        try server.start()
        self.server = server

        connectRedis()
        startTimers()
        watchSignals()

        Log.info("worker.ready", ["port": configuration.port, "server_id": serverID])
        sendHeartbeatToSupervisor()
        loop.run()
        Log.info("worker.exit", ["status": exitStatus])
        return exitStatus
    }

    private func connectRedis() {
        commands.onConnected = { [unowned self] in
            sendHeartbeat()
            commandsConnected()
        }
        subscriber.onConnected = { [unowned self] in probe.reset() }
        subscriber.onDisconnected = { [unowned self] _ in subscriberDisconnected() }
        subscriber.onSubscribed = { [unowned self] channel in subscriptionConfirmed(channel) }
        subscriber.onMessage = { [unowned self] channel, payload in
            notificationReceived(channel: channel, payload: payload)
        }

        subscriber.subscribe(Array(RedisKeys.serverChannel(serverID).utf8))
        commands.start()
        subscriber.start()
    }

    private func startTimers() {
        let tick = LoopTimer(loop: loop) { [unowned self] in expireDeadlines() }
        tick.start(afterMilliseconds: Self.tickMilliseconds, repeatMilliseconds: Self.tickMilliseconds)
        tickTimer = tick

        let maintenance = LoopTimer(loop: loop) { [unowned self] in performMaintenance() }
        maintenance.start(
            afterMilliseconds: Self.maintenanceMilliseconds, repeatMilliseconds: Self.maintenanceMilliseconds)
        maintenanceTimer = maintenance
        startRegistryTimers()
    }

    private func watchSignals() {
        for signal in [SIGTERM, SIGINT] {
            signalWatchers.append(
                SignalWatcher(loop: loop, signal: signal) { [unowned self] number in
                    if isDraining {
                        Log.warning("worker.stop_now", ["signal": number])
                        finish()
                    } else {
                        beginDrain(signal: number)
                    }
                })
        }
    }

    /// Runs once per maintenance interval: the supervisor's liveness beat, user
    /// grace periods, subscription linger and the pub/sub probe. The drain has a
    /// faster timer of its own.
    private func performMaintenance() {
        let now = loop.nowMilliseconds

        sendHeartbeatToSupervisor()
        expireUserMappings(now: now)
        releaseIdleSubscriptions(now: now)
        checkProbe(now: now)
    }

    /// Closes handles so the loop can end, after the drain or at a second signal.
    func finish() {
        guard !isFinished else { return }
        isFinished = true
        tickTimer?.close()
        maintenanceTimer?.close()
        drainTimer?.close()
        registryTimers.forEach { $0.close() }
        for watcher in signalWatchers {
            watcher.close()
        }
        signalWatchers.removeAll()
        server?.stopAccepting()
        for connection in server?.openConnections ?? [] {
            connection.close()
        }
        commands.stop()
        subscriber.stop()
        loop.stop()
    }

    var drainTimer: LoopTimer?

    /// Tells the supervisor that this loop still turns. The pipe is non-blocking:
    /// when it is full the supervisor has beats enough to read.
    private func sendHeartbeatToSupervisor() {
        guard let descriptor = configuration.livenessDescriptor else { return }
        var beat: UInt8 = 1
        guard write(descriptor, &beat, 1) < 0, errno == EPIPE, !isDraining else { return }

        // The supervisor is gone, so nothing would restart or stop this worker.
        Log.error("worker.supervisor_lost", [:])
        beginDrain(signal: 0)
    }

    static func wallClockMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec / 1_000_000)
    }

    private static func makeServerID(slot: Int) -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let host = String(cString: name)
        let nonce = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(host)-\(getpid())-\(slot)-\(nonce)"
    }
}

/// Counters that each heartbeat writes to the registry for `/metrics`.
struct WorkerCounters {
    var pollsAnswered: [PollOutcome: Int] = [:]
    var messagesPublished = 0
    var deliveries = 0
    var pollsRejectedOverLimit = 0
}

/// The end-to-end check of the pub/sub connection: a token published through
/// the command connection must come back on the subscriber within a deadline.
struct ProbeState {
    var sentAt: UInt64?
    var lastSentAt: UInt64 = 0
    var isHealthy = false

    mutating func reset() {
        sentAt = nil
        isHealthy = false
    }
}
