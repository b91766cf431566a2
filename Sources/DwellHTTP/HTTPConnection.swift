import CLibUV
import DwellEventLoop

/// One accepted TCP connection.
///
/// At most one request per connection is handed to the handler at a time. Later
/// pipelined requests wait, with the parser paused, until the handler responds and
/// the response is written. Call only on the server's loop thread.
///
/// The connection retains itself while its libuv handle is open: `tcp.data`
/// carries one retain from `init` until the handle's close callback.
public final class HTTPConnection {
    /// Lifecycle. An `open` connection serves requests, and a `closing` one has sent
    /// its last response and waits for the write, the shutdown and the client's end
    /// of stream.
    enum Phase: UInt8 {
        case open
        case closing
        case closed
    }

    /// What a read deadline waits for, which decides the action when it passes.
    enum ReadDeadlineKind: UInt8 {
        case header
        case idle
        case body
        case linger
    }

    /// A number unique within this server, starting at 1.
    public let id: UInt64
    /// State owned by the handler, such as the worker's poll record. Cleared when
    /// the connection closes, after `abandoned` was delivered.
    public var context: AnyObject?

    let server: HTTPServer
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    /// Released when the connection starts closing, so a closed connection that a
    /// timer wheel entry still references holds no parser.
    var decoder: RequestDecoder?
    /// Bytes read after the request in flight, parsed once its response is written.
    /// The unparsed part starts at `pendingStart`.
    var pending: [UInt8] = []
    var pendingStart = 0

    var phase = Phase.open
    public internal(set) var hasRequestInFlight = false
    /// Whether a request was delivered and its response is not written yet. Pipelined
    /// bytes go to `pending` meanwhile.
    var isParsingSuspended = false
    var isReading = false
    /// Whether the client ended its side of the connection.
    var isPeerClosed = false
    var hasResponded = false
    /// Loop time of the accept, so a drain can tell a new connection from an idle one.
    let acceptedAt: UInt64
    var inFlightIsHead = false
    var inFlightKeepsAlive = false
    var inFlightIsHTTP10 = false
    var writesInProgress: Int32 = 0

    /// Deadlines in the loop's milliseconds, 0 when unset.
    var readDeadline: UInt64 = 0
    var readDeadlineKind = ReadDeadlineKind.header
    var writeDeadline: UInt64 = 0
    /// When this connection's live entry in the server's timer wheel is due, 0 when none.
    var scheduledCheck: UInt64 = 0
    /// Token of the live wheel entry, so that older entries are ignored when they expire.
    var deadlineToken: UInt32 = 0

    init(id: UInt64, server: HTTPServer, tcp: UnsafeMutablePointer<uv_tcp_t>) {
        self.id = id
        self.server = server
        self.tcp = tcp
        acceptedAt = server.loop.nowMilliseconds
        decoder = RequestDecoder(limits: server.limits)
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// Whether the connection still serves requests: false once it began closing.
    public var isOpen: Bool {
        phase == .open
    }

    /// Sends the response to the request in flight.
    ///
    /// Does nothing when the connection is closing or closed, or when no request is
    /// in flight. The server adds `Date`, `Content-Length` and, when the connection
    /// is to close, `Connection: close`. The connection closes after the response
    /// when the response or the client requests it, the request was an upgrade, or
    /// the server is draining.
    public func respond(_ response: HTTPResponse) {
        guard phase == .open, hasRequestInFlight else { return }
        hasRequestInFlight = false

        let closes = response.closesConnection || !inFlightKeepsAlive || server.isDraining
        let field: ResponseHead.ConnectionField =
            closes ? .close : (inFlightIsHTTP10 ? .keepAlive : .none)
        write(response, isHead: inFlightIsHead, connection: field, resumesParsing: !closes)
        if closes {
            beginClosing()
        }
    }

    /// Closes the connection at once, dropping queued writes.
    ///
    /// When a request was in flight, the delegate's `abandoned` runs before this returns.
    public func close() {
        guard phase != .closed else { return }
        let wasInFlight = hasRequestInFlight

        phase = .closed
        hasRequestInFlight = false
        isParsingSuspended = false
        decoder = nil
        pending = []
        pendingStart = 0
        readDeadline = 0
        writeDeadline = 0
        server.connectionClosed(self)

        if wasInFlight {
            server.delegate?.server(server, abandoned: self)
        }
        context = nil

        // libuv cancels queued writes and a pending shutdown, calling their callbacks
        // with UV_ECANCELED before this close callback.
        uv_close(tcp.handle) { handle in
            guard let handle else { return }
            Unmanaged<HTTPConnection>.fromOpaque(handle.pointee.data).release()
            handle.withMemoryRebound(to: uv_tcp_t.self, capacity: 1) { $0.deallocate() }
        }
    }

    /// Whether the connection waits for a new request with nothing buffered or being written.
    var isIdle: Bool {
        phase == .open && !hasRequestInFlight && !isParsingSuspended && writesInProgress == 0
            && decoder?.isRequestStarted != true && pending.count == pendingStart
    }

    /// The connection's own heap blocks, for memory tests: the object, its decoder and
    /// parser, and the libuv handle. Pending bytes, the server's connection table and
    /// the timer wheel entry are not included.
    var heapAllocations: [UnsafeRawPointer] {
        var blocks = [UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque())]
        blocks += decoder?.heapAllocations ?? []
        if phase != .closed {
            blocks.append(UnsafeRawPointer(tcp))
        }
        return blocks
    }

    /// Starts reading and arms the header deadline from accept, so a client that
    /// connects and sends nothing is closed after the header timeout.
    func start() {
        uv_tcp_nodelay(tcp, 1)
        startReading()
        setReadDeadline(.header, after: server.limits.headerTimeoutMilliseconds)
    }
}
