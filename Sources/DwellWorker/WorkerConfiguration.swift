import DwellHTTP
import DwellRedis

/// Everything a worker process needs to serve, fixed at start.
public struct WorkerConfiguration {
    /// The listening socket the worker serves on; inherited from the supervisor.
    public var listeningDescriptor: Int32
    public var slot: Int
    public var port: Int
    public var redis: RedisEndpoint
    public var holdTimeoutMilliseconds: UInt64 = 25_000
    /// The share of the hold timeout that jitter may take off, so clients that
    /// connected together do not reconnect together; jitter never lengthens a hold.
    public var holdJitterFraction: Double = 0.1
    public var retentionCount: Int = 1000
    public var retentionMilliseconds: UInt64 = 300_000
    /// How long a Redis subscription outlives the last poll that needed it, so a
    /// client that polls again at once costs no SUBSCRIBE/UNSUBSCRIBE pair.
    public var subscriptionLingerMilliseconds: UInt64 = 30_000
    /// Interval of the probe that checks the pub/sub connection end to end.
    public var probeIntervalMilliseconds: UInt64 = 5_000
    public var probeDeadlineMilliseconds: UInt64 = 3_000
    public var drainTimeoutMilliseconds: UInt64 = 10_000
    /// How often the worker refreshes its registration; the registration expires
    /// after three intervals without a refresh.
    public var heartbeatIntervalMilliseconds: UInt64 = 5_000
    /// Polls one user may hold at once across the cluster; the next one gets 429.
    public var maxPollsPerUser = 4
    /// How long a user mapping with no poll left survives, so a client that polls
    /// again at once is still routed here.
    public var userGraceMilliseconds: UInt64 = 5_000
    /// The address other machines and operators know this server by, for the registry.
    public var advertisedHost = "127.0.0.1"
    public var http = HTTPLimits()
    /// The write end of the supervisor's liveness pipe; the worker writes a byte
    /// to it every second from its loop. Nil when run without a supervisor.
    public var livenessDescriptor: Int32?

    public init(listeningDescriptor: Int32, slot: Int, port: Int, redis: RedisEndpoint) {
        self.listeningDescriptor = listeningDescriptor
        self.slot = slot
        self.port = port
        self.redis = redis
    }
}
