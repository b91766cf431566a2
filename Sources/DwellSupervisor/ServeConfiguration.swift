import DwellEventLoop
import Glibc

/// The settings of `dwell serve`, shared by the supervisor and its workers.
public struct ServeConfiguration {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Worker processes; one per online core unless set.
    public var workers = ServeConfiguration.onlineCores
    /// Nil: the supervisor runs a private redis-server.
    public var redisURL: String?
    public var holdTimeoutSeconds = 25.0
    public var retentionCount = 1000
    public var retentionSeconds = 300.0
    public var drainTimeoutSeconds = 10.0
    /// A worker whose liveness pipe stays silent this long is killed and replaced.
    public var workerStallTimeoutSeconds = 10.0
    /// The directory for the private redis-server's append-only file; nil keeps data in memory only.
    public var dataDirectory: String?
    public var heartbeatIntervalSeconds = 5.0
    public var maxPollsPerUser = 4
    /// The address recorded in the registry; nil means the machine's host name.
    public var advertisedHost: String?
    public var redisServerProgram = "redis-server"
    public var logLevel = LogLevel.info

    public init() {}

    public static var onlineCores: Int {
        max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// The arguments of `dwell worker` for one slot; the listening socket is
    /// descriptor 3 and the liveness pipe descriptor 4 in the child.
    public func workerArguments(slot: Int, redisURL: String) -> [String] {
        [
            "worker", "--listen-fd", "3", "--slot", String(slot), "--host", host, "--port", String(port),
            "--redis", redisURL, "--hold-timeout", String(holdTimeoutSeconds),
            "--retention-count", String(retentionCount), "--retention-seconds", String(retentionSeconds),
            "--drain-timeout", String(drainTimeoutSeconds), "--log-level", logLevel.name,
            "--heartbeat-interval", String(heartbeatIntervalSeconds), "--max-polls-per-user", String(maxPollsPerUser),
        ] + (advertisedHost.map { ["--advertise-host", $0] } ?? [])
    }
}
