import DwellEventLoop
import Glibc
import Testing

@testable import DwellHTTP

/// Socket tests on 127.0.0.1. Serialized, because every harness runs libuv's default loop.
@Suite(.serialized) struct HTTPServerTests {
    @Test func keepAliveServesTwoRequests() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("GET /one HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { client.responses().count == 1 })
        harness.send("GET /two?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { client.responses().count == 2 })

        let responses = client.responses()
        try #require(responses.count == 2)
        #expect(responses.map(\.status) == [200, 200])
        #expect(responses.map(\.reason) == ["OK", "OK"])
        #expect(responses.map(\.bodyText) == ["GET /one", "GET /two"])
        #expect(responses[0].header("content-length") == "8")
        #expect(responses[0].header("content-type") == "text/plain")
        #expect(responses[0].header("connection") == nil)
        #expect(responses[1].header("connection") == nil)
        #expect(responses[0].header("date")?.hasSuffix(" GMT") == true)
        #expect(!client.isEndOfStream)
        #expect(harness.received.map(\.request.query) == ["", "x=1"])
        #expect(harness.received[0].connection === harness.received[1].connection)
        #expect(harness.server.connectionCount == 1)
        #expect(harness.server.responsesByStatus == [200: 2])
    }

    @Test func http10ClosesByDefault() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("GET /old HTTP/1.0\r\n\r\n", on: client)
        #expect(harness.pump { client.isEndOfStream })

        let responses = client.responses()
        #expect(responses.count == 1)
        #expect(responses.first?.header("connection") == "close")
        #expect(responses.first?.bodyText == "GET /old")
        // The server reads on after its shutdown until the client closes too.
        client.close()
        #expect(harness.pump { harness.server.connectionCount == 0 })
    }

    @Test func http10KeepAliveEchoed() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", on: client)
        #expect(harness.pump { client.responses().count == 1 })
        harness.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", on: client)
        #expect(harness.pump { client.responses().count == 2 })

        let responses = client.responses()
        #expect(responses.map { $0.header("connection") } == ["keep-alive", "keep-alive"])
        #expect(responses.map(\.bodyText) == ["GET /a", "GET /b"])
        #expect(!client.isEndOfStream)
    }

    @Test func connectionCloseHonoured() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", on: client)
        #expect(harness.pump { client.isEndOfStream })
        #expect(client.responses().first?.header("connection") == "close")
        #expect(!client.wasReset)
    }

    @Test func responseClosesConnectionOnRequest() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        harness.handler = { request, connection in
            var response = ServerHarness.echo(request)
            response.closesConnection = true
            connection.respond(response)
        }
        let client = try harness.connect()

        harness.send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { client.isEndOfStream })
        #expect(client.responses().first?.header("connection") == "close")
    }

    @Test func pipelinedRequestsWaitForHeldOne() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        var held: HTTPConnection?
        harness.handler = { request, connection in
            if request.path == "/held" {
                held = connection
            } else {
                connection.respond(ServerHarness.echo(request))
            }
        }
        let client = try harness.connect()

        harness.send(
            "GET /held HTTP/1.1\r\nHost: t\r\n\r\n"
                + "GET /second HTTP/1.1\r\nHost: t\r\n\r\n"
                + "POST /third HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody",
            on: client)
        #expect(harness.pump { held != nil })
        harness.runIterations(20)
        #expect(harness.received.count == 1)
        #expect(client.received.isEmpty)
        let connection = try #require(held)
        #expect(connection.hasRequestInFlight)

        connection.respond(HTTPResponse(status: 200, body: SharedBytes("held")))
        #expect(!connection.hasRequestInFlight)
        #expect(harness.pump { client.responses().count == 3 })

        #expect(client.responses().map(\.bodyText) == ["held", "GET /second", "POST /third body"])
        #expect(harness.received.map(\.request.path) == ["/held", "/second", "/third"])
        #expect(!client.isEndOfStream)
    }

    @Test func pipelinedRequestsAnsweredAtOnce() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        let client = try harness.connect()

        var text = ""
        for index in 0..<50 {
            text += "GET /r\(index) HTTP/1.1\r\nHost: t\r\n\r\n"
        }
        harness.send(text, on: client)
        #expect(harness.pump { client.responses().count == 50 })
        #expect(client.responses().map(\.bodyText) == (0..<50).map { "GET /r\($0)" })
    }

    @Test func chunkedBodyDelivered() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", on: client)
        harness.runIterations(3)
        harness.send("4\r\nwiki\r\n5\r\npedia\r\n", on: client)
        harness.runIterations(3)
        #expect(harness.received.isEmpty)
        harness.send("0\r\n\r\n", on: client)
        #expect(harness.pump { client.responses().count == 1 })

        #expect(client.responses().first?.bodyText == "POST /upload wikipedia")
    }

    @Test func continueSentBeforeBody() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("PUT /data HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", on: client)
        #expect(harness.pump { client.responses().count == 1 })
        #expect(client.receivedText == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(harness.received.isEmpty)

        harness.send("hello", on: client)
        #expect(harness.pump { client.responses().count == 2 })
        #expect(client.responses().map(\.status) == [100, 200])
        #expect(client.responses().last?.bodyText == "PUT /data hello")
    }

    @Test func continueWithOversizedBodyGets413() throws {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 100
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send(
            "PUT /data HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n", on: client)
        #expect(harness.pump { client.isEndOfStream })

        let responses = client.responses()
        #expect(responses.map(\.status) == [413])
        #expect(responses.first?.bodyText == "{\"error\":\"request body is larger than 100 bytes\"}")
        #expect(harness.received.isEmpty)
    }

    @Test func invalidRequestsAnsweredAndClosed() throws {
        var limits = HTTPLimits()
        limits.maxURLBytes = 100
        limits.maxHeaderBytes = 200
        limits.maxBodyBytes = 50
        let cases: [(String, Int)] = [
            ("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 51\r\n\r\n", 413),
            (
                "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n"
                    + String(repeating: "x", count: 64) + "\r\n0\r\n\r\n", 413
            ),
            ("GET /" + String(repeating: "u", count: 100) + " HTTP/1.1\r\nHost: t\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + String(repeating: "h", count: 200) + "\r\n\r\n", 431),
            ("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
        ]
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }

        for (text, status) in cases {
            let client = try harness.connect()
            harness.send(text, on: client)
            #expect(harness.pump { client.isEndOfStream }, "\(status)")

            let response = client.responses().first
            #expect(response?.status == status)
            #expect(response?.header("connection") == "close", "\(status)")
            #expect(response?.header("content-type") == "application/json; charset=utf-8", "\(status)")
            #expect(response?.bodyText.hasPrefix("{\"error\":\"") == true, "\(status)")
            #expect(!client.wasReset, "\(status)")
            client.close()
        }
        #expect(harness.received.isEmpty)
        #expect(harness.server.responsesByStatus == [400: 2, 413: 2, 414: 1, 431: 1, 505: 1])
        #expect(harness.pump { harness.server.connectionCount == 0 })
    }

    @Test func rejectedRequestWithUnreadBodyNotReset() throws {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 1000
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }
        let client = try harness.connect()

        // The body the server will never read follows the rejected headers at once.
        let body = String(repeating: "b", count: 200_000)
        harness.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + body, on: client)
        client.shutdownWrite()
        #expect(harness.pump { client.isEndOfStream })
        #expect(client.responses().first?.status == 413)
        #expect(!client.wasReset)
    }

    @Test func headAnswersWithoutBody() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        harness.handler = { request, connection in
            connection.respond(HTTPResponse(status: 200, body: SharedBytes("hello world")))
        }
        let client = try harness.connect()

        harness.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /g HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { client.responses(headRequests: [0]).count == 2 })

        let responses = client.responses(headRequests: [0])
        #expect(responses[0].header("content-length") == "11")
        #expect(responses[0].body.isEmpty)
        #expect(responses[1].bodyText == "hello world")
        // Nothing follows the two responses, so the HEAD response carried no body bytes.
        let headLength = client.receivedText.components(separatedBy: "\r\n\r\n")[0].utf8.count + 4
        #expect(client.received.count == headLength * 2 + 11)
    }

    @Test func bodylessStatusesOmitBody() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        harness.handler = { request, connection in
            let status = Int(request.path.dropFirst()) ?? 500
            connection.respond(HTTPResponse(status: status, body: SharedBytes("ignored")))
        }
        let client = try harness.connect()

        harness.send(
            "GET /204 HTTP/1.1\r\nHost: t\r\n\r\nGET /304 HTTP/1.1\r\nHost: t\r\n\r\n"
                + "GET /299 HTTP/1.1\r\nHost: t\r\n\r\n",
            on: client)
        #expect(harness.pump { client.responses().count == 3 })

        let responses = client.responses()
        #expect(responses.map(\.status) == [204, 304, 299])
        #expect(responses[0].header("content-length") == nil)
        #expect(responses[1].header("content-length") == nil)
        #expect(responses[2].reason == "")
        #expect(responses[2].bodyText == "ignored")
    }

    @Test func handlerHeadersSanitized() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        harness.handler = { _, connection in
            connection.respond(
                HTTPResponse(
                    status: 200,
                    headers: [
                        ("X-Injected", "a\r\nSet-Cookie: b"), ("Content-Length", "999"), ("Cache-Control", "no-store"),
                    ],
                    body: SharedBytes("ok")))
        }
        let client = try harness.connect()

        harness.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { client.responses().count == 1 })

        let response = try #require(client.responses().first)
        #expect(response.header("set-cookie") == nil)
        #expect(response.header("x-injected") == "a  Set-Cookie: b")
        #expect(response.header("content-length") == "2")
        #expect(response.headers.filter { $0.name.lowercased() == "content-length" }.count == 1)
        #expect(response.header("cache-control") == "no-store")
    }

    @Test func clientDisconnectWhileHeldAbandonsOnce() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        var held: HTTPConnection?
        harness.handler = { _, connection in held = connection }
        let client = try harness.connect()

        harness.send("GET /api/poll HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { held != nil })
        let connection = try #require(held)
        #expect(connection.isOpen)

        client.close()
        #expect(harness.pump { !harness.abandonedConnectionIDs.isEmpty })
        harness.runIterations(10)

        #expect(harness.abandonedConnectionIDs == [connection.id])
        #expect(!connection.isOpen)
        #expect(!connection.hasRequestInFlight)
        #expect(harness.server.connectionCount == 0)

        // A response after the client left is dropped.
        connection.respond(HTTPResponse(status: 200, body: SharedBytes("late")))
        connection.close()
        harness.runIterations(3)
        #expect(harness.server.responsesByStatus.isEmpty)
        #expect(harness.abandonedConnectionIDs.count == 1)
    }

    @Test func halfCloseWhileHeldAbandons() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        harness.handler = { _, _ in }
        let client = try harness.connect()

        harness.send("GET /api/poll HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { harness.received.count == 1 })
        client.shutdownWrite()
        #expect(harness.pump { harness.abandonedConnectionIDs.count == 1 })
        #expect(harness.pump { client.isEndOfStream })
    }

    @Test func handlerCloseReportsAbandoned() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        harness.handler = { _, connection in connection.close() }
        let client = try harness.connect()

        harness.send("GET /x HTTP/1.1\r\nHost: t\r\n\r\nGET /y HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { client.isEndOfStream })
        #expect(harness.received.count == 1)
        #expect(harness.abandonedConnectionIDs.count == 1)
        #expect(client.received.isEmpty)
    }

    @Test func drainClosesIdleAndAnswersHeld() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        var held: HTTPConnection?
        harness.handler = { request, connection in
            if request.path == "/held" {
                held = connection
            } else {
                connection.respond(ServerHarness.echo(request))
            }
        }
        let idleClient = try harness.connect()
        let heldClient = try harness.connect()
        harness.send("GET /quick HTTP/1.1\r\nHost: t\r\n\r\n", on: idleClient)
        harness.send("GET /held HTTP/1.1\r\nHost: t\r\n\r\n", on: heldClient)
        #expect(harness.pump { idleClient.responses().count == 1 })
        #expect(harness.pump { held != nil })
        #expect(idleClient.responses().first?.header("connection") == nil)

        harness.server.stopAccepting()
        #expect(!harness.server.isAccepting)
        #expect(harness.server.isDraining)
        harness.server.closeIdleConnections()
        #expect(harness.pump { idleClient.isEndOfStream })
        let heldID = try #require(held).id
        #expect(harness.server.openConnections.map(\.id) == [heldID])

        held?.respond(HTTPResponse(status: 200, body: SharedBytes("done")))
        #expect(harness.pump { heldClient.isEndOfStream })
        #expect(heldClient.responses().first?.header("connection") == "close")
        #expect(heldClient.responses().first?.bodyText == "done")
        #expect(throws: SocketError.self) { try TestClient(port: harness.port) }
    }

    @Test func closeReportsInFlightAsAbandoned() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        harness.handler = { _, _ in }
        let client = try harness.connect()

        harness.send("GET /held HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { harness.received.count == 1 })
        harness.server.close()
        #expect(harness.abandonedConnectionIDs.count == 1)
        #expect(harness.pump { client.isEndOfStream })
    }

    @Test func headerTimeoutSends408() throws {
        var limits = HTTPLimits()
        limits.headerTimeoutMilliseconds = 300
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }
        let partial = try harness.connect()
        let silent = try harness.connect()

        harness.send("GET /slow HTTP/1.1\r\nHost: t\r\nX-Rest", on: partial)
        #expect(harness.pump { partial.isEndOfStream })
        #expect(harness.pump { silent.isEndOfStream })

        #expect(partial.responses().map(\.status) == [408])
        #expect(partial.responses().first?.header("connection") == "close")
        #expect(silent.received.isEmpty)
        #expect(harness.received.isEmpty)
        #expect(harness.server.responsesByStatus == [408: 1])
    }

    @Test func idleTimeoutClosesQuietly() throws {
        var limits = HTTPLimits()
        limits.idleTimeoutMilliseconds = 300
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("GET /once HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { client.isEndOfStream })
        #expect(client.responses().map(\.status) == [200])
        #expect(client.responses().first?.header("connection") == nil)
        #expect(harness.pump { harness.server.connectionCount == 0 })
    }

    @Test func trickledBodyTimesOut() throws {
        var limits = HTTPLimits()
        limits.bodyTimeoutMilliseconds = 600
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n", on: client)
        // One byte every 200 ms keeps the connection busy, but not past the body deadline.
        var sent = 0
        let trickle = LoopTimer(loop: harness.loop) {
            sent += 1
            harness.send("x", on: client)
        }
        trickle.start(afterMilliseconds: 200, repeatMilliseconds: 200)
        #expect(harness.pump { client.isEndOfStream })
        trickle.close()

        #expect(sent < 10)
        #expect(client.responses().map(\.status) == [408])
        #expect(harness.received.isEmpty)
    }

    @Test func heldRequestHasNoTimeout() throws {
        var limits = HTTPLimits()
        limits.headerTimeoutMilliseconds = 250
        limits.idleTimeoutMilliseconds = 250
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }
        var held: HTTPConnection?
        harness.handler = { _, connection in held = connection }
        let client = try harness.connect()

        harness.send("GET /api/poll HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { held != nil })
        // Well past both timeouts: a held poll is the handler's to time out.
        var ticks = 0
        let deadlineTimer = LoopTimer(loop: harness.loop) { ticks += 1 }
        deadlineTimer.start(afterMilliseconds: 1000)
        #expect(harness.pump { ticks == 1 })
        deadlineTimer.close()

        #expect(held?.isOpen == true)
        #expect(!client.isEndOfStream)
        held?.respond(HTTPResponse(status: 200, body: SharedBytes("late")))
        #expect(harness.pump { client.responses().count == 1 })
    }

    @Test func writeQueueCapClosesConnection() throws {
        var limits = HTTPLimits()
        limits.maxQueuedWriteBytes = 1024
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }
        let body = SharedBytes([UInt8](repeating: 0x61, count: 64 << 20))
        harness.handler = { _, connection in
            connection.respond(HTTPResponse(status: 200, body: body))
        }
        // A client the harness does not read, so most of the 64 MB body stays queued.
        let client = try TestClient(port: harness.port)
        defer { client.close() }

        harness.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { harness.received.count == 1 })
        #expect(harness.pump { harness.server.connectionCount == 0 })
    }

    @Test func writeTimeoutClosesConnection() throws {
        var limits = HTTPLimits()
        limits.writeTimeoutMilliseconds = 300
        limits.maxQueuedWriteBytes = 1 << 30
        let harness = try ServerHarness(limits: limits)
        defer { harness.shutdown() }
        let body = SharedBytes([UInt8](repeating: 0x61, count: 64 << 20))
        harness.handler = { _, connection in
            connection.respond(HTTPResponse(status: 200, body: body))
        }
        let client = try TestClient(port: harness.port)

        // This client is not read by the harness, so the write stalls.
        harness.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        #expect(harness.pump { harness.received.count == 1 })
        #expect(harness.pump { harness.server.connectionCount == 0 })
        client.close()
    }

    @Test func sharedBodyWrittenToManyConnections() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        var held: [HTTPConnection] = []
        harness.handler = { _, connection in held.append(connection) }
        let clients = try (0..<20).map { _ in try harness.connect() }

        for client in clients {
            harness.send("GET /api/poll HTTP/1.1\r\nHost: t\r\n\r\n", on: client)
        }
        #expect(harness.pump { held.count == clients.count })

        let message = SharedBytes("{\"messages\":[{\"id\":1}],\"lastEventId\":1,\"hasMore\":false}")
        for connection in held {
            connection.respond(HTTPResponse(status: 200, body: message))
        }
        #expect(harness.pump { clients.allSatisfy { $0.responses().count == 1 } })
        #expect(clients.allSatisfy { $0.responses().first?.body == message.bytes })
        #expect(harness.server.responsesByStatus == [200: 20])
    }

    @Test func idleAndHeldConnectionsStayUnder1KB() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        var held: HTTPConnection?
        harness.handler = { request, connection in
            if request.path == "/held" {
                held = connection
            } else {
                connection.respond(ServerHarness.echo(request))
            }
        }
        let idleClient = try harness.connect()
        let heldClient = try harness.connect()

        harness.send("GET /quick HTTP/1.1\r\nHost: t\r\n\r\n", on: idleClient)
        harness.send("GET /held?channels=a HTTP/1.1\r\nHost: t\r\nUser-Agent: test\r\n\r\n", on: heldClient)
        #expect(harness.pump { idleClient.responses().count == 1 })
        #expect(harness.pump { held != nil })
        let idle = try #require(harness.received.first { $0.request.path == "/quick" }?.connection)
        #expect(harness.pump { idle.isIdle })

        let idleBytes = try heapBytes(of: idle)
        let heldBytes = try heapBytes(of: try #require(held))
        #expect(idleBytes < 1024, "idle connection holds \(idleBytes) bytes")
        #expect(heldBytes < 1024, "held connection holds \(heldBytes) bytes")
    }

    /// Sums malloc_usable_size over the connection's heap blocks and pending bytes.
    private func heapBytes(of connection: HTTPConnection) throws -> Int {
        // Glibc's Swift module does not import malloc.h, so look the function up.
        typealias UsableSize = @convention(c) (UnsafeRawPointer?) -> Int
        let symbol = try #require(dlsym(nil, "malloc_usable_size"))
        let usableSize = unsafeBitCast(symbol, to: UsableSize.self)
        return connection.heapAllocations.reduce(connection.pending.capacity) { $0 + usableSize($1) }
    }

    @Test func absoluteFormTargetServed() throws {
        let harness = try ServerHarness()
        defer { harness.shutdown() }
        let client = try harness.connect()

        harness.send("GET http://example.com/api/poll?channels=a HTTP/1.1\r\nHost: example.com\r\n\r\n", on: client)
        #expect(harness.pump { client.responses().count == 1 })
        #expect(harness.received.first?.request.path == "/api/poll")
        #expect(harness.received.first?.request.query == "channels=a")
    }

    @Test func startFailureLeavesDescriptorOpen() throws {
        // A descriptor that is not a socket: uv_tcp_open accepts any fd, uv_listen does not.
        var pipeEnds: [Int32] = [0, 0]
        #expect(pipe(&pipeEnds) == 0)
        defer {
            close(pipeEnds[0])
            close(pipeEnds[1])
        }
        let delegate = NullDelegate()
        let server = HTTPServer(
            loop: EventLoop(), listeningDescriptor: pipeEnds[0], limits: HTTPLimits(), delegate: delegate)

        #expect(throws: SystemError.self) { try server.start() }
        #expect(fcntl(pipeEnds[0], F_GETFD) >= 0)
        #expect(!server.isAccepting)
        EventLoop().runOnce(blocking: false)
    }
}

private final class NullDelegate: HTTPServerDelegate {
    func server(_ server: HTTPServer, received request: HTTPRequest, on connection: HTTPConnection) {}
    func server(_ server: HTTPServer, abandoned connection: HTTPConnection) {}
}
