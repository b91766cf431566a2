import CHiredis
import DwellEventLoop

/// The failure of a command that got no normal reply.
public enum RedisCommandError: Error, Equatable {
    /// The command was not sent, so nothing reached Redis.
    case notConnected
    /// The command was sent, but the connection broke before its reply, so its outcome
    /// is unknown.
    case connectionLost
    /// No reply came within the command timeout. The connection was dropped, so the
    /// outcome is unknown, as with `connectionLost`.
    case timedOut
    /// Redis replied with an error, such as `NOSCRIPT ...` or `ERR ...`.
    case server(String)
}

/// One asynchronous hiredis connection on the loop that reconnects by itself.
///
/// After `start()`, the connection connects, selects the endpoint's database when it is
/// not 0, and then calls `onConnected`. While it is not connected, `send` fails with
/// `.notConnected` instead of queueing. Every command completes within the command
/// timeout plus one watchdog interval (a quarter of the timeout, at most 500 ms): with
/// its reply, with `.notConnected` on the next loop turn, or with `.connectionLost` or
/// `.timedOut`. Replies arrive in the order the commands were sent.
///
/// Pub/sub commands and `MONITOR` are rejected with a precondition failure, because they
/// change how hiredis matches replies to callbacks. Use `RedisSubscriber` for pub/sub.
/// Blocking commands such as `BLPOP` must use a server timeout below the command timeout.
///
/// Call everything on the loop thread, and call `stop()` before releasing the object.
/// hiredis writes with write(2), so the process must ignore SIGPIPE, or a write to a
/// closed connection kills it.
public final class RedisConnection {
    /// Called when the connection is ready, after the connect and the `SELECT`.
    public var onConnected: (() -> Void)?
    /// Called with the reason when a ready connection is lost, after the reconnect is
    /// scheduled. Not called for the close that `stop()` causes.
    public var onDisconnected: ((String) -> Void)?

    public let endpoint: RedisEndpoint
    public let commandTimeoutMilliseconds: UInt64

    private let link: RedisLink
    private var isReady = false
    /// Whether `onConnected` ran for the current context, so `onDisconnected` pairs with it.
    private var hasAnnouncedConnect = false
    private var pending: [UInt: PendingCommand] = [:]
    private var nextToken: UInt = 1
    /// The smallest token that may still be pending, which is the oldest command,
    /// because hiredis completes commands in the order they were sent.
    private var oldestToken: UInt = 1
    /// While a timed-out connection is dropped, commands sent at or before this loop
    /// time fail with `.timedOut` and later ones with `.connectionLost`.
    private var timedOutBefore: UInt64?

    private struct PendingCommand {
        let sentAt: UInt64
        let completion: (Result<RedisValue, RedisCommandError>) -> Void
    }

    /// Creates a connection that connects on `start()`. `name` labels its log lines, as
    /// in "commands".
    ///
    /// The connect timeout covers the socket connect. The command timeout covers every
    /// command, including the `SELECT` that follows the connect.
    public init(
        loop: EventLoop, endpoint: RedisEndpoint, name: String,
        commandTimeoutMilliseconds: UInt64 = 5_000,
        reconnectBaseMilliseconds: UInt64 = 100, reconnectMaxMilliseconds: UInt64 = 5_000,
        connectTimeoutMilliseconds: UInt64 = 5_000
    ) {
        self.endpoint = endpoint
        self.commandTimeoutMilliseconds = max(commandTimeoutMilliseconds, 1)
        let interval = RedisLink.watchdogInterval(
            forTimeout: min(self.commandTimeoutMilliseconds, connectTimeoutMilliseconds))
        link = RedisLink(
            loop: loop, endpoint: endpoint, name: name,
            backoff: RedisBackoff(
                baseMilliseconds: reconnectBaseMilliseconds, maxMilliseconds: reconnectMaxMilliseconds),
            connectTimeoutMilliseconds: connectTimeoutMilliseconds, watchdogIntervalMilliseconds: interval)
        link.delegate = self
    }

    deinit {
        failAllPending(with: .connectionLost)
        link.delegate = nil
        link.stop()
    }

    /// Whether the connection is ready for commands.
    public var isConnected: Bool { isReady }

    /// Connections made after the first one.
    public var reconnectCount: Int { link.reconnectCount }

    /// Connect attempts started after a failed connect or a lost connection.
    public var reconnectAttemptCount: Int { link.reconnectAttemptCount }

    /// The reason for the last failed connect or lost connection, or nil before the
    /// first failure. A later successful connect keeps it, for health reports.
    public var lastFailureReason: String? { link.lastFailureReason }

    /// Commands sent and not yet completed.
    public var pendingCount: Int { pending.count }

    /// Starts the first connect attempt now. Later calls, and calls after `stop()`, do
    /// nothing.
    public func start() {
        link.start()
    }

    /// Disconnects for good. Pending commands complete with `.connectionLost`, and later
    /// commands with `.notConnected`.
    public func stop() {
        isReady = false
        link.stop()
    }

    /// Sends a command. `completion` runs exactly once on the loop, never before `send`
    /// returns. `stop()`, `dropConnection(reason:)` and `deinit` run the completions of
    /// pending commands before they return, except when called from inside a callback of
    /// this connection, which defers the close to the next loop turn.
    ///
    /// A top-level error reply becomes `.failure(.server(message))`.
    public func send(
        _ arguments: [[UInt8]], completion: @escaping (Result<RedisValue, RedisCommandError>) -> Void
    ) {
        Self.rejectSubscriptionCommands(arguments)
        guard isReady else {
            link.runSoon { completion(.failure(.notConnected)) }
            return
        }
        sendNow(arguments, completion: completion)
    }

    public func send(
        _ arguments: [String], completion: @escaping (Result<RedisValue, RedisCommandError>) -> Void
    ) {
        send(arguments.map { Array($0.utf8) }, completion: completion)
    }

    /// Drops the connection and reconnects after the backoff delay. The owner calls it
    /// when it decides that the connection is dead. Pending commands complete with
    /// `.connectionLost`.
    public func dropConnection(reason: String) {
        isReady = false
        link.drop(reason: reason)
    }
}

extension RedisConnection {
    /// Appends the command to hiredis without checking readiness, so that the connect
    /// sequence can send `SELECT`.
    private func sendNow(
        _ arguments: [[UInt8]], completion: @escaping (Result<RedisValue, RedisCommandError>) -> Void
    ) {
        let token = nextToken
        nextToken += 1
        pending[token] = PendingCommand(sentAt: link.loop.nowMilliseconds, completion: completion)

        guard link.append(arguments, token: token) else {
            pending[token] = nil
            advanceOldestToken()
            link.runSoon { completion(.failure(.notConnected)) }
            return
        }
        link.startWatchdog()
    }

    private func advanceOldestToken() {
        while oldestToken < nextToken, pending[oldestToken] == nil {
            oldestToken += 1
        }
    }

    private func failAllPending(with error: RedisCommandError) {
        let failed = pending.sorted { $0.key < $1.key }
        pending = [:]
        oldestToken = nextToken
        for (_, command) in failed {
            command.completion(.failure(error))
        }
    }

    private func selectDatabase() {
        let arguments = ["SELECT", String(endpoint.database)].map { Array($0.utf8) }
        sendNow(arguments) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success:
                self.becomeReady()
            case .failure(.server(let message)):
                // The server has no such database. Retrying with backoff keeps the error
                // in the logs until the configuration is fixed.
                Log.error(
                    "redis.select_failed",
                    ["name": self.link.name, "database": self.endpoint.database, "error": message])
                self.link.drop(reason: "SELECT \(self.endpoint.database) failed: \(message)")
            case .failure:
                // The connection is already going away and reconnects by itself.
                break
            }
        }
    }

    private func becomeReady() {
        isReady = true
        hasAnnouncedConnect = true
        link.connectionSucceeded()
        onConnected?()
    }

    /// Stops a caller from putting hiredis into subscribed or monitor mode, where it
    /// would call one completion many times or abort on a reply it cannot match.
    private static func rejectSubscriptionCommands(_ arguments: [[UInt8]]) {
        precondition(!arguments.isEmpty, "RedisConnection.send needs at least the command name")
        // Every rejected name starts with m, p, s or u, so this test spares the usual
        // commands a string allocation.
        guard let first = arguments[0].first, "mpsuMPSU".utf8.contains(first) else { return }
        let name = String(decoding: arguments[0].prefix(16), as: UTF8.self).lowercased()
        switch name {
        case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe", "monitor":
            preconditionFailure("RedisConnection cannot send \(name.uppercased()). Use RedisSubscriber for pub/sub")
        default:
            break
        }
    }
}

extension RedisConnection: RedisLinkDelegate {
    func linkOpened(_ link: RedisLink) {
        if endpoint.database == 0 {
            becomeReady()
        } else {
            selectDatabase()
        }
    }

    func linkClosed(_ link: RedisLink, reason: String) {
        let wasAnnounced = hasAnnouncedConnect
        isReady = false
        hasAnnouncedConnect = false
        timedOutBefore = nil
        // hiredis has run every pending callback with a NULL reply by now, so this finds
        // a command only if hiredis lost its callback, and then the outcome is unknown.
        failAllPending(with: .connectionLost)
        if wasAnnounced, !link.isStopRequested {
            onDisconnected?(reason)
        }
    }

    func link(_ link: RedisLink, received reply: UnsafeMutablePointer<redisReply>?, token: UInt) {
        guard let command = pending.removeValue(forKey: token) else { return }
        advanceOldestToken()

        guard let reply else {
            let isTimedOut = timedOutBefore.map { command.sentAt <= $0 } ?? false
            command.completion(.failure(isTimedOut ? .timedOut : .connectionLost))
            return
        }
        let value = RedisValue(reply: reply)
        if case .error(let message) = value {
            command.completion(.failure(.server(message)))
        } else {
            command.completion(.success(value))
        }
    }

    var linkNeedsWatchdog: Bool { !pending.isEmpty }

    func linkWatchdogFired(_ link: RedisLink, now: UInt64) {
        guard let oldest = pending[oldestToken], now >= oldest.sentAt + commandTimeoutMilliseconds else { return }

        isReady = false
        timedOutBefore = now - commandTimeoutMilliseconds
        Log.warning(
            "redis.command_timeout",
            ["name": link.name, "pending": pending.count, "timeout_ms": commandTimeoutMilliseconds])
        link.drop(reason: "no reply within \(commandTimeoutMilliseconds) ms")
    }
}
