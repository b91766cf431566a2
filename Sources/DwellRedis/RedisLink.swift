import CHiredis
import CLibUV
import DwellEventLoop
import Glibc

/// The owner of a `RedisLink`, which receives its events on the loop thread.
protocol RedisLinkDelegate: AnyObject {
    /// Reports that the socket connected, so commands can be appended now.
    func linkOpened(_ link: RedisLink)
    /// Reports that an open context went away. Every pending reply callback has already
    /// run with a nil reply, and a reconnect is scheduled unless the link is stopping.
    func linkClosed(_ link: RedisLink, reason: String)
    /// Delivers the reply for `token`, or nil when the context goes away without one.
    func link(_ link: RedisLink, received reply: UnsafeMutablePointer<redisReply>?, token: UInt)
    /// Checks for timed-out work. The watchdog timer calls it while `linkNeedsWatchdog`
    /// is true.
    func linkWatchdogFired(_ link: RedisLink, now: UInt64)
    var linkNeedsWatchdog: Bool { get }
}

/// A hiredis async context on the loop, replaced by a new one after each failure.
///
/// It adds a connect timeout and reconnect backoff, and it follows the hiredis ownership
/// rules, so that `RedisConnection` and `RedisSubscriber` need not.
///
/// Rules from hiredis 0.14.1 `async.c` that shape this class:
/// - The context is freed by hiredis itself after a failed connect (the connect
///   callback gets `REDIS_ERR`, and no disconnect callback follows) and after a read
///   or write error (the disconnect callback runs last).
/// - `redisAsyncFree` runs every pending reply callback with a NULL reply, and then the
///   disconnect callback only if the socket had connected.
/// - The connect and disconnect callbacks run without `REDIS_IN_CALLBACK`, so freeing
///   the context from them is a use after free or a double free. This class therefore
///   never frees a context from inside any hiredis callback and defers that to the next
///   loop turn.
/// - `redisAsyncDisconnect` waits for pending replies, which never come from a hung
///   server, so a dropped connection is always freed with `redisAsyncFree`.
///
/// The context's `data` holds one retained reference to the link, released when the
/// context is gone. Call every method on the loop thread.
final class RedisLink {
    typealias Context = UnsafeMutablePointer<redisAsyncContext>

    enum State {
        case idle
        case connecting(Context, deadline: UInt64)
        case open(Context)
        /// `redisAsyncFree` is running, and its callbacks must not use the context.
        case closing
        case waitingToReconnect
        case stopped
    }

    let loop: EventLoop
    let endpoint: RedisEndpoint
    /// The owner's role in logs, such as "commands" or "subscriber".
    let name: String
    weak var delegate: RedisLinkDelegate?

    private(set) var state: State = .idle
    /// Connections that succeeded after the first one.
    private(set) var reconnectCount = 0
    /// Connect attempts started by the reconnect timer.
    private(set) var reconnectAttemptCount = 0
    private(set) var isStopRequested = false
    /// The reason for the last failed connect or lost connection.
    private(set) var lastFailureReason: String?

    private let backoff: RedisBackoff
    private let connectTimeoutMilliseconds: UInt64
    private let watchdogIntervalMilliseconds: UInt64
    /// Failed connects and lost connections since the last successful connect.
    private var consecutiveFailures = 0
    private var hasConnectedBefore = false
    /// Bumped whenever a context dies, so deferred work aimed at an old context is dropped.
    private var generation: UInt64 = 0
    /// The reason given to `drop(reason:)` or `stop()`, reported when the context dies.
    private var requestedCloseReason: String?
    /// Nesting depth of hiredis callbacks on the stack. While it is not 0, the context
    /// must not be freed.
    fileprivate var callbackDepth = 0

    private var reconnectTimer: LoopTimer?
    private var watchdogTimer: LoopTimer?
    private var isWatchdogRunning = false
    private var deferTimer: LoopTimer?
    private var deferredWork: [() -> Void] = []

    init(
        loop: EventLoop, endpoint: RedisEndpoint, name: String,
        backoff: RedisBackoff, connectTimeoutMilliseconds: UInt64, watchdogIntervalMilliseconds: UInt64
    ) {
        self.loop = loop
        self.endpoint = endpoint
        self.name = name
        self.backoff = backoff
        self.connectTimeoutMilliseconds = max(connectTimeoutMilliseconds, 1)
        self.watchdogIntervalMilliseconds = max(watchdogIntervalMilliseconds, 1)
        reconnectTimer = LoopTimer(loop: loop) { [weak self] in self?.reconnectTimerFired() }
        watchdogTimer = LoopTimer(loop: loop) { [weak self] in self?.watchdogFired() }
        deferTimer = LoopTimer(loop: loop) { [weak self] in self?.runDeferredWork() }
    }

    deinit {
        // Deferred work contains completions that must still run exactly once.
        let work = deferredWork
        deferredWork = []
        for item in work {
            item()
        }
        reconnectTimer?.close()
        watchdogTimer?.close()
        deferTimer?.close()
    }

    /// Returns a quarter of `timeout`, from 10 to 500 ms, so that a timeout fires at most
    /// a quarter late and the watchdog wakes the loop at most 100 times a second.
    static func watchdogInterval(forTimeout timeout: UInt64) -> UInt64 {
        min(max(timeout / 4, 10), 500)
    }

    var context: Context? {
        if case .open(let context) = state { context } else { nil }
    }

    var isOpen: Bool { context != nil }

    /// Starts the first connect attempt. Later calls, and calls after `stop()`, do nothing.
    func start() {
        guard case .idle = state, !isStopRequested else { return }
        connect()
    }

    /// Closes the context for good. Pending reply callbacks run with a nil reply now, or
    /// on the next loop turn when called from inside a hiredis callback.
    func stop() {
        guard !isStopRequested else { return }
        isStopRequested = true
        reconnectTimer?.stop()

        switch state {
        case .connecting, .open:
            closeContext(reason: "stopped")
        case .idle, .closing, .waitingToReconnect, .stopped:
            state = .stopped
            finishStop()
        }
    }

    /// Frees the current context and schedules a reconnect. Does nothing while no
    /// context exists.
    func drop(reason: String) {
        guard !isStopRequested else { return }
        closeContext(reason: reason)
    }

    /// Resets the backoff and logs the connect. The owner calls it when its connect
    /// sequence is done.
    func connectionSucceeded() {
        consecutiveFailures = 0
        if hasConnectedBefore {
            reconnectCount += 1
        }
        hasConnectedBefore = true
        Log.info("redis.connected", ["name": name, "endpoint": endpoint.description])
    }

    /// Appends a command to the open context, and `token` comes back with its reply.
    ///
    /// Returns false when no context is open or hiredis rejects the command (while it
    /// is disconnecting), and then nothing was sent.
    func append(_ arguments: [[UInt8]], token: UInt) -> Bool {
        guard let context else { return false }
        let status = RedisArgv.withArgv(arguments) { count, argv, lengths in
            redisAsyncCommandArgv(
                context,
                { context, reply, privdata in
                    RedisLink.replyReceived(context, reply, privdata)
                },
                UnsafeMutableRawPointer(bitPattern: token), count, argv, lengths)
        }
        return status == REDIS_OK
    }

    /// Runs `work` on a later loop turn, outside every hiredis callback.
    func runSoon(_ work: @escaping () -> Void) {
        guard let deferTimer else {
            work()
            return
        }
        deferredWork.append(work)
        if deferredWork.count == 1 {
            deferTimer.start(afterMilliseconds: 0)
        }
    }

    /// Starts the watchdog timer unless it is running. The owner calls it when it starts
    /// to need `linkWatchdogFired`.
    func startWatchdog() {
        guard !isWatchdogRunning, !isStopRequested else { return }
        isWatchdogRunning = true
        watchdogTimer?.start(
            afterMilliseconds: watchdogIntervalMilliseconds, repeatMilliseconds: watchdogIntervalMilliseconds)
    }
}

// MARK: - Connecting and closing

extension RedisLink {
    private func connect() {
        let created: Context?
        switch endpoint.address {
        case .tcp(let host, let port):
            // NOTE: hiredis resolves the host with a blocking getaddrinfo, so a DNS name
            // that is slow to resolve stalls the loop. IP addresses and /etc/hosts names
            // resolve without network traffic.
            created = redisAsyncConnect(host, Int32(port))
        case .unix(let path):
            created = redisAsyncConnectUnix(path)
        }
        guard let context = created else {
            connectFailed(reason: "hiredis could not allocate a context")
            return
        }
        if context.pointee.err != 0 {
            let reason = Self.errorText(of: UnsafePointer(context))
            redisAsyncFree(context)
            connectFailed(reason: reason)
            return
        }
        if let problem = prepareSocket(of: context) {
            redisAsyncFree(context)
            connectFailed(reason: problem)
            return
        }

        context.pointee.data = Unmanaged.passRetained(self).toOpaque()
        // The connect callback must be set after attaching, because setting it makes
        // hiredis call the addWrite hook, and writability is how hiredis detects the
        // connect.
        redisAsyncSetConnectCallback(context) { context, status in
            RedisLink.connectFinished(context, status)
        }
        redisAsyncSetDisconnectCallback(context) { context, status in
            RedisLink.disconnected(context, status)
        }
        state = .connecting(context, deadline: loop.nowMilliseconds + connectTimeoutMilliseconds)
        startWatchdog()
    }

    /// Marks the socket close-on-exec, turns on TCP keepalive and attaches the context to
    /// the loop. Returns the problem, or nil when all of it worked.
    private func prepareSocket(of context: Context) -> String? {
        // hiredis 0.14.1 creates its socket without SOCK_CLOEXEC, and the supervisor
        // forks children that must not inherit it.
        let fd = context.pointee.c.fd
        if fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 {
            return SystemError(call: "fcntl(F_SETFD)", errno: errno).description
        }
        // Keepalive finds a dead peer on an idle connection. hiredis records a failure
        // in the context's error field, which would fail every later read, so a failure
        // counts as a failed connect.
        if case .tcp = endpoint.address, redisEnableKeepAlive(&context.pointee.c) != REDIS_OK {
            return "enabling TCP keepalive failed: \(Self.errorText(of: UnsafePointer(context)))"
        }
        if !RedisPollAdapter.attach(context, to: loop.raw) {
            return "libuv cannot poll the socket of the hiredis context"
        }
        return nil
    }

    /// Frees the current context now, or on the next loop turn from inside a callback.
    private func closeContext(reason: String) {
        let context: Context
        switch state {
        case .connecting(let current, _), .open(let current):
            context = current
        case .idle, .closing, .waitingToReconnect, .stopped:
            return
        }

        if callbackDepth > 0 {
            let expectedGeneration = generation
            runSoon { [weak self] in
                guard let self, self.generation == expectedGeneration else { return }
                self.closeContext(reason: reason)
            }
            return
        }

        requestedCloseReason = reason
        let hasConnected = context.pointee.c.flags & REDIS_CONNECTED != 0
        state = .closing
        redisAsyncFree(context)
        if !hasConnected {
            // No hiredis callback runs for a context whose socket never connected, so the
            // reference that `data` held is released here.
            Unmanaged.passUnretained(self).release()
            connectFailed(reason: reason)
        }
        // For a connected context, redisAsyncFree has run the disconnect callback, which
        // released the reference and scheduled the reconnect.
    }

    private func connectFailed(reason: String) {
        generation += 1
        requestedCloseReason = nil
        if isStopRequested {
            state = .stopped
            finishStop()
            return
        }
        lastFailureReason = reason
        Log.warning("redis.connect_failed", ["name": name, "endpoint": endpoint.description, "reason": reason])
        scheduleReconnect()
    }

    private func contextClosed(hiredisReason: String) {
        let reason = requestedCloseReason ?? hiredisReason
        generation += 1
        requestedCloseReason = nil
        if isStopRequested {
            state = .stopped
            Log.info("redis.disconnected", ["name": name, "reason": reason])
            delegate?.linkClosed(self, reason: reason)
            finishStop()
            return
        }
        lastFailureReason = reason
        Log.warning("redis.disconnected", ["name": name, "reason": reason])
        scheduleReconnect()
        delegate?.linkClosed(self, reason: reason)
    }

    private func scheduleReconnect() {
        consecutiveFailures += 1
        let delay = backoff.jitteredDelay(forAttempt: consecutiveFailures)
        state = .waitingToReconnect
        Log.info("redis.reconnect", ["name": name, "attempt": consecutiveFailures, "delay_ms": delay])
        reconnectTimer?.start(afterMilliseconds: delay)
    }

    private func reconnectTimerFired() {
        guard case .waitingToReconnect = state, !isStopRequested else { return }
        reconnectAttemptCount += 1
        connect()
    }

    private func watchdogFired() {
        let now = loop.nowMilliseconds
        if case .connecting(_, let deadline) = state, now >= deadline {
            closeContext(reason: "connect timed out after \(connectTimeoutMilliseconds) ms")
        }
        if isOpen, let delegate, delegate.linkNeedsWatchdog {
            delegate.linkWatchdogFired(self, now: now)
        }

        var isNeeded = false
        if case .connecting = state {
            isNeeded = true
        } else if isOpen, delegate?.linkNeedsWatchdog == true {
            isNeeded = true
        }
        if !isNeeded || isStopRequested {
            watchdogTimer?.stop()
            isWatchdogRunning = false
        }
    }

    private func runDeferredWork() {
        let work = deferredWork
        deferredWork = []
        for item in work {
            item()
        }
    }

    /// Closes the reconnect and watchdog timers once no context is left. Deferred work
    /// still runs.
    private func finishStop() {
        reconnectTimer?.close()
        reconnectTimer = nil
        watchdogTimer?.close()
        watchdogTimer = nil
        isWatchdogRunning = false
    }

    static func errorText(of context: UnsafePointer<redisAsyncContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.c.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "hiredis error \(context.pointee.c.err)" : text
    }
}

// MARK: - hiredis callbacks

extension RedisLink {
    private static func owner(of context: UnsafePointer<redisAsyncContext>?) -> Unmanaged<RedisLink>? {
        guard let data = context?.pointee.data else { return nil }
        return Unmanaged<RedisLink>.fromOpaque(data)
    }

    fileprivate static func connectFinished(_ context: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
        guard let context, let owner = owner(of: context) else { return }
        let link = owner.takeUnretainedValue()
        link.callbackDepth += 1
        defer { link.callbackDepth -= 1 }

        guard status == REDIS_OK else {
            // hiredis frees this context when the callback returns and runs no
            // disconnect callback, so the reference held by `data` ends here.
            let reason = errorText(of: context)
            link.connectFailed(reason: reason)
            owner.release()
            return
        }

        link.state = .open(UnsafeMutablePointer(mutating: context))
        // A stop requested during the connect frees the context on the next loop turn.
        if !link.isStopRequested {
            link.delegate?.linkOpened(link)
        }
    }

    fileprivate static func disconnected(_ context: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
        guard let context, let owner = owner(of: context) else { return }
        let link = owner.takeUnretainedValue()
        link.callbackDepth += 1
        defer { link.callbackDepth -= 1 }

        let reason = status == REDIS_OK ? "closed" : errorText(of: context)
        link.contextClosed(hiredisReason: reason)
        // The context is dead once this callback returns.
        owner.release()
    }

    fileprivate static func replyReceived(
        _ context: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?,
        _ privdata: UnsafeMutableRawPointer?
    ) {
        guard let owner = owner(of: context) else { return }
        let link = owner.takeUnretainedValue()
        link.callbackDepth += 1
        defer { link.callbackDepth -= 1 }

        let token = UInt(bitPattern: privdata)
        link.delegate?.link(link, received: reply?.assumingMemoryBound(to: redisReply.self), token: token)
    }
}
