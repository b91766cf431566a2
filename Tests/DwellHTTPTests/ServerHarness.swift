import CLibUV
import DwellEventLoop
import Glibc

@testable import DwellHTTP

/// An `HTTPServer` on 127.0.0.1 and a delegate that records its requests and
/// abandoned connections, driven by the test's own thread: the test sends with non-blocking clients and runs the
/// loop until a condition holds or a deadline passes.
///
/// `EventLoop()` wraps libuv's default loop, so only one harness may exist at a time:
/// suites that use it are serialized.
final class ServerHarness: HTTPServerDelegate {
    let loop = EventLoop()
    private(set) var server: HTTPServer!
    let port: UInt16
    private(set) var received: [(request: HTTPRequest, connection: HTTPConnection)] = []
    private(set) var abandonedConnectionIDs: [UInt64] = []
    /// The request handler, which by default responds with method, path and body.
    var handler: (HTTPRequest, HTTPConnection) -> Void = { request, connection in
        connection.respond(ServerHarness.echo(request))
    }
    private var clients: [TestClient] = []
    /// Wakes the loop every few milliseconds, so that a blocking loop iteration
    /// returns to check the clients, whose sockets the loop does not watch.
    private var wakeTimer: LoopTimer!

    init(limits: HTTPLimits = HTTPLimits()) throws {
        let (descriptor, port) = try makeListeningSocket()
        self.port = port
        server = HTTPServer(loop: loop, listeningDescriptor: descriptor, limits: limits, delegate: self)
        do {
            try server.start()
        } catch {
            Glibc.close(descriptor)
            throw error
        }
        wakeTimer = LoopTimer(loop: loop) {}
        wakeTimer.start(afterMilliseconds: 2, repeatMilliseconds: 2)
    }

    static func echo(_ request: HTTPRequest) -> HTTPResponse {
        var text = "\(request.method.name) \(request.path)"
        if !request.body.isEmpty {
            text += " " + String(decoding: request.body, as: UTF8.self)
        }
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain")], body: SharedBytes(text))
    }

    func connect() throws -> TestClient {
        let client = try TestClient(port: port)
        clients.append(client)
        return client
    }

    /// Sends all of `text`, running the loop whenever the client's socket is full.
    func send(_ text: String, on client: TestClient) {
        send(Array(text.utf8), on: client)
    }

    func send(_ bytes: [UInt8], on client: TestClient) {
        var offset = 0
        let finished = pump(timeoutSeconds: 10) {
            offset += client.sendSome(bytes[offset...])
            return offset == bytes.count
        }
        precondition(finished, "test client could not send \(bytes.count) bytes")
    }

    /// Runs the loop until `condition` holds, and returns false if it still does not
    /// after `timeoutSeconds`.
    @discardableResult
    func pump(timeoutSeconds: Double = 5, until condition: () -> Bool) -> Bool {
        let deadline = Self.monotonicSeconds() + timeoutSeconds
        while true {
            for client in clients {
                client.readAvailable()
            }
            if condition() {
                return true
            }
            if Self.monotonicSeconds() > deadline {
                return false
            }
            loop.runOnce(blocking: true)
        }
    }

    /// Runs `count` loop iterations, for checks that something does not happen while
    /// the server has every chance to do it.
    func runIterations(_ count: Int) {
        for _ in 0..<count {
            loop.runOnce(blocking: true)
            for client in clients {
                client.readAvailable()
            }
        }
    }

    /// Closes the clients, the server and the wake timer, then runs the loop until
    /// every handle's close callback has run, so the next test finds the default loop empty.
    func shutdown() {
        for client in clients {
            client.close()
        }
        clients = []
        server.close()
        wakeTimer.close()
        var iterations = 0
        while uv_loop_alive(loop.raw) != 0, iterations < 1000 {
            loop.runOnce(blocking: false)
            iterations += 1
        }
    }

    func server(_ server: HTTPServer, received request: HTTPRequest, on connection: HTTPConnection) {
        received.append((request, connection))
        handler(request, connection)
    }

    func server(_ server: HTTPServer, abandoned connection: HTTPConnection) {
        abandonedConnectionIDs.append(connection.id)
    }

    private static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
