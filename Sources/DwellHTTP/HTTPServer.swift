import CLibUV
import DwellCore
import DwellEventLoop
import Glibc

/// An HTTP/1.1 server on a libuv loop and an already listening socket.
///
/// Connections read into one shared buffer, so an idle connection owns no read
/// buffer, and their deadlines share one timer wheel driven by one loop timer. Call
/// only on the loop's thread.
///
/// The server does not retain its delegate. While listening, the listener handle
/// retains the server until `stopAccepting()` or `close()`.
public final class HTTPServer {
    /// Size of the shared read buffer, which is also the maximum size of one read.
    static let readBufferSize = 64 << 10
    /// Granularity of every connection deadline.
    static let deadlineTickMilliseconds: UInt64 = 250

    let loop: EventLoop
    let limits: HTTPLimits
    public private(set) weak var delegate: HTTPServerDelegate?
    private let listeningDescriptor: Int32
    private var listener: UnsafeMutablePointer<uv_tcp_t>?
    private var isStarted = false
    /// Whether the server stopped accepting. Every later response closes its connection.
    public private(set) var isDraining = false

    private var connections: [UInt64: HTTPConnection] = [:]
    private var nextConnectionID: UInt64 = 1
    /// Final responses written, by status code, including the server's own errors.
    public private(set) var responsesByStatus: [Int: Int] = [:]

    /// The buffer that every connection reads into, as `HTTPConnection.startReading()` explains.
    let readBuffer: UnsafeMutableRawBufferPointer
    var dateCache = HTTPDateCache()
    private var deadlines: TimerWheel<HTTPConnection>
    /// How far ahead a connection's wheel entry may be due: the shortest of the
    /// header, idle and write timeouts.
    let deadlineCheckInterval: UInt64
    private var deadlineTimer: LoopTimer?
    private var isDeadlineTimerRunning = false
    /// When an accept failure was last logged, and how many were not logged since.
    private var lastAcceptFailureLogMilliseconds: UInt64?
    private var unloggedAcceptFailures = 0

    /// Creates a server for `listeningDescriptor`, a bound and listening TCP socket.
    ///
    /// The caller keeps ownership of the descriptor until `start()` succeeds. From
    /// then on the server closes it in `stopAccepting()` or `close()`.
    public init(loop: EventLoop, listeningDescriptor: Int32, limits: HTTPLimits, delegate: HTTPServerDelegate) {
        self.loop = loop
        self.listeningDescriptor = listeningDescriptor
        self.limits = limits
        self.delegate = delegate
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        deadlines = TimerWheel(tickMilliseconds: Self.deadlineTickMilliseconds, now: loop.nowMilliseconds)
        let shortestTimeout = min(
            limits.headerTimeoutMilliseconds, limits.idleTimeoutMilliseconds, limits.writeTimeoutMilliseconds)
        deadlineCheckInterval = max(shortestTimeout, Self.deadlineTickMilliseconds)
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Open connections, including those closing after their last response.
    public var connectionCount: Int {
        connections.count
    }

    /// Every open connection, in no particular order, so that a draining worker can
    /// respond to the requests in flight.
    public var openConnections: [HTTPConnection] {
        Array(connections.values)
    }

    /// Whether the listener is accepting connections.
    public var isAccepting: Bool {
        listener != nil
    }

    /// Starts accepting on the listening socket with uv_tcp_open and uv_listen.
    ///
    /// The server works on a duplicate of the descriptor, so that a failure leaves the
    /// caller's descriptor open, and closes the original on success. Ignores SIGPIPE
    /// for the whole process, because libuv writes with writev(2), which raises
    /// SIGPIPE on a connection the client has closed.
    /// - Throws: `SystemError` naming the call that failed.
    public func start() throws {
        guard !isStarted else { return }

        let descriptor = fcntl(listeningDescriptor, F_DUPFD_CLOEXEC, 0)
        guard descriptor >= 0 else {
            throw SystemError(call: "fcntl(F_DUPFD_CLOEXEC)", errno: errno)
        }

        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        var status = uv_tcp_init(loop.raw, tcp)
        guard status == 0 else {
            tcp.deallocate()
            Glibc.close(descriptor)
            throw SystemError(call: "uv_tcp_init", uvStatus: status)
        }
        status = uv_tcp_open(tcp, descriptor)
        guard status == 0 else {
            closeUnownedHandle(tcp)
            Glibc.close(descriptor)
            throw SystemError(call: "uv_tcp_open", uvStatus: status)
        }
        status = uv_listen(tcp.stream, SOMAXCONN) { stream, status in
            guard let stream else { return }
            let server = Unmanaged<HTTPServer>.fromOpaque(stream.pointee.data).takeUnretainedValue()
            server.connectionReady(status: status)
        }
        guard status == 0 else {
            // The handle owns the duplicate now and closes it.
            closeUnownedHandle(tcp)
            throw SystemError(call: "uv_listen", uvStatus: status)
        }

        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
        Glibc.close(listeningDescriptor)
        listener = tcp
        isStarted = true
        signal(SIGPIPE, SIG_IGN)

        let timer = LoopTimer(loop: loop) { [weak self] in
            self?.expireDeadlines()
        }
        timer.unreference()
        deadlineTimer = timer
        Log.info("http.listening", ["fd": descriptor])
    }

    /// Closes the listener, for a drain. Existing connections continue, but every
    /// later response carries `Connection: close` and ends its connection.
    public func stopAccepting() {
        isDraining = true
        guard let tcp = listener else { return }
        listener = nil

        uv_close(tcp.handle) { handle in
            guard let handle else { return }
            Unmanaged<HTTPServer>.fromOpaque(handle.pointee.data).release()
            handle.withMemoryRebound(to: uv_tcp_t.self, capacity: 1) { $0.deallocate() }
        }
        Log.info("http.stopped_accepting", ["connections": connections.count])
    }

    /// Closes the connections that wait for a request with nothing buffered or being
    /// written. Connections with a request in progress or in flight stay open.
    ///
    /// A connection that has not sent its first request yet is spared for
    /// `newConnectionGraceMilliseconds` after its accept: its client has likely sent
    /// a request already, and closing a socket with unread bytes would reset it.
    public func closeIdleConnections() {
        let now = loop.nowMilliseconds
        for connection in connections.values where connection.isIdle {
            let isNew = !connection.hasResponded && now - connection.acceptedAt < Self.newConnectionGraceMilliseconds
            if !isNew {
                connection.close()
            }
        }
    }

    static let newConnectionGraceMilliseconds: UInt64 = 1_000

    /// Stops accepting and closes every connection at once, reporting each request in
    /// flight to the delegate as abandoned, then stops the deadline timer.
    public func close() {
        stopAccepting()
        for connection in Array(connections.values) {
            connection.close()
        }
        deadlineTimer?.close()
        deadlineTimer = nil
        isDeadlineTimerRunning = false
        // Drops the wheel's references to the closed connections.
        deadlines = TimerWheel(tickMilliseconds: Self.deadlineTickMilliseconds, now: loop.nowMilliseconds)
    }

    func connectionClosed(_ connection: HTTPConnection) {
        connections.removeValue(forKey: connection.id)
    }

    func responseWritten(status: Int) {
        responsesByStatus[status, default: 0] += 1
    }

    func scheduleDeadlineCheck(for connection: HTTPConnection, token: UInt32, at deadline: UInt64) {
        deadlines.schedule(connection, token: token, at: deadline)
        if !isDeadlineTimerRunning, let deadlineTimer {
            isDeadlineTimerRunning = true
            deadlineTimer.start(
                afterMilliseconds: Self.deadlineTickMilliseconds,
                repeatMilliseconds: Self.deadlineTickMilliseconds)
        }
    }

    private func expireDeadlines() {
        let now = loop.nowMilliseconds
        for entry in deadlines.expire(now: now) where entry.token == entry.element.deadlineToken {
            entry.element.deadlineCheckDue(now: now)
        }
        if deadlines.count == 0 {
            deadlineTimer?.stop()
            isDeadlineTimerRunning = false
        }
    }

    private func connectionReady(status: Int32) {
        guard let listener else { return }
        guard status == 0 else {
            // For example EMFILE, when the process has run out of descriptors.
            logAcceptFailure(SystemError(call: "accept", uvStatus: status))
            return
        }

        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        uv_tcp_init(loop.raw, tcp)
        let acceptStatus = uv_accept(listener.stream, tcp.stream)
        guard acceptStatus == 0 else {
            logAcceptFailure(SystemError(call: "uv_accept", uvStatus: acceptStatus))
            closeUnownedHandle(tcp)
            return
        }

        let connection = HTTPConnection(id: nextConnectionID, server: self, tcp: tcp)
        nextConnectionID += 1
        connections[connection.id] = connection
        connection.start()
    }

    /// Logs an accept failure at most once per second, with the count of failures
    /// left out since the last line, because descriptor exhaustion repeats on every accept.
    private func logAcceptFailure(_ error: SystemError) {
        let now = loop.nowMilliseconds
        if let last = lastAcceptFailureLogMilliseconds, now < last + 1000 {
            unloggedAcceptFailures += 1
            return
        }
        Log.warning("http.accept_failed", ["error": error, "unlogged_failures": unloggedAcceptFailures])
        lastAcceptFailureLogMilliseconds = now
        unloggedAcceptFailures = 0
    }
}
