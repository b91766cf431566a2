import DwellEventLoop
import Testing

@testable import DwellRedis

extension RedisLoopTests {
    @Suite
    struct RedisConnectionTests {
        let loop = RedisLoopTests.loop
        var driver: LoopDriver { LoopDriver(loop: loop) }

        private func connect(
            to server: RedisServerProcess, database: Int = 0, commandTimeoutMilliseconds: UInt64 = 5_000
        ) -> RedisConnection {
            let endpoint = RedisEndpoint(address: .tcp(host: "127.0.0.1", port: server.port), database: database)
            let connection = RedisConnection(
                loop: loop, endpoint: endpoint, name: "commands",
                commandTimeoutMilliseconds: commandTimeoutMilliseconds,
                reconnectBaseMilliseconds: 20, reconnectMaxMilliseconds: 200)
            connection.start()
            return connection
        }

        private func shutDown(_ connection: RedisConnection) {
            connection.stop()
            driver.drain()
        }

        @Test func setGetIncrRoundTrip() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            #expect(driver.run { connection.isConnected })

            #expect(driver.send(connection, ["SET", "greeting", "hello"]) == .success(.status("OK")))
            #expect(driver.send(connection, ["GET", "greeting"]) == .success(.bulk(Array(text: "hello"))))
            #expect(driver.send(connection, ["GET", "missing"]) == .success(.null))
            for expected in Int64(1)...3 {
                #expect(driver.send(connection, ["INCR", "counter"]) == .success(.integer(expected)))
            }
            #expect(driver.send(connection, ["DEL", "greeting", "counter"]) == .success(.integer(2)))

            let listReply = driver.send(connection, ["RPUSH", "list", "a", "b"])
            #expect(listReply == .success(.integer(2)))
            let range = driver.send(connection, ["LRANGE", "list", "0", "-1"])
            #expect(range == .success(.array([.bulk(Array(text: "a")), .bulk(Array(text: "b"))])))
        }

        @Test func serverErrorsBecomeServerFailures() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            #expect(driver.run { connection.isConnected })

            guard case .failure(.server(let unknown)) = driver.send(connection, ["NOSUCHCOMMAND"]) else {
                Issue.record("an unknown command did not fail with a server error")
                return
            }
            #expect(unknown.hasPrefix("ERR unknown command"))

            _ = driver.send(connection, ["SET", "text", "abc"])
            guard case .failure(.server(let wrongType)) = driver.send(connection, ["INCR", "text"]) else {
                Issue.record("INCR of a non-integer did not fail with a server error")
                return
            }
            #expect(wrongType.hasPrefix("ERR value is not an integer"))
            #expect(connection.isConnected)
        }

        @Test func binarySafeArguments() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            #expect(driver.run { connection.isConnected })

            let key: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x24, 0x2A]
            var value: [UInt8] = []
            for index in 0..<(256 * 4096) {
                value.append(UInt8(truncatingIfNeeded: index &* 31))
            }
            #expect(driver.send(connection, [Array(text: "SET"), key, value]) == .success(.status("OK")))
            #expect(driver.send(connection, [Array(text: "GET"), key]) == .success(.bulk(value)))
            #expect(driver.send(connection, [Array(text: "STRLEN"), key]) == .success(.integer(Int64(value.count))))

            let emptyKey = Array(text: "empty")
            #expect(driver.send(connection, [Array(text: "SET"), emptyKey, []]) == .success(.status("OK")))
            #expect(driver.send(connection, [Array(text: "GET"), emptyKey]) == .success(.bulk([])))
        }

        @Test func pipelinedCommandsCompleteInOrder() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            #expect(driver.run { connection.isConnected })

            let count = 2_000
            var replies: [Int64] = []
            var failures = 0
            for _ in 0..<count {
                connection.send(["INCR", "sequence"]) { result in
                    switch result {
                    case .success(let value): replies.append(value.integer ?? -1)
                    case .failure: failures += 1
                    }
                }
            }
            #expect(connection.pendingCount == count)

            #expect(driver.run { replies.count + failures == count })
            #expect(failures == 0)
            #expect(replies == Array(1...Int64(count)))
            #expect(connection.pendingCount == 0)
        }

        @Test func crashMidPipelineCompletesEachOnce() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            #expect(driver.run { connection.isConnected })

            let count = 5_000
            var completions = Array(repeating: 0, count: count)
            var successes = 0
            var losses = 0
            var others = 0
            // A paused server reads nothing, so at least the commands still queued
            // when it dies are lost, however fast the machine is.
            server.pause()
            for index in 0..<count {
                connection.send(["INCR", "crash-counter"]) { result in
                    completions[index] += 1
                    switch result {
                    case .success: successes += 1
                    case .failure(.connectionLost): losses += 1
                    case .failure: others += 1
                    }
                }
            }
            // Let part of the pipeline reach the server's socket before it dies.
            loop.runOnce(blocking: false)
            server.crashWhilePaused()

            #expect(driver.run { successes + losses + others == count })
            #expect(completions.allSatisfy { $0 == 1 })
            #expect(others == 0)
            #expect(losses > 0)
            #expect(connection.pendingCount == 0)
        }

        @Test func completionNeverRunsInsideSend() throws {
            let connection = RedisConnection(
                loop: loop, endpoint: RedisEndpoint(address: .tcp(host: "127.0.0.1", port: 1)), name: "commands")
            defer { shutDown(connection) }

            var result: Result<RedisValue, RedisCommandError>?
            connection.send(["PING"]) { result = $0 }
            #expect(result == nil)

            #expect(driver.run { result != nil })
            #expect(result == .failure(.notConnected))
        }

        @Test func selectsEndpointDatabase() throws {
            let server = try RedisServerProcess()
            let inDatabase3 = connect(to: server, database: 3)
            let inDatabase0 = connect(to: server)
            defer {
                shutDown(inDatabase3)
                shutDown(inDatabase0)
            }
            #expect(driver.run { inDatabase3.isConnected })
            #expect(driver.run { inDatabase0.isConnected })

            #expect(driver.send(inDatabase3, ["SET", "placed", "3"]) == .success(.status("OK")))
            #expect(driver.send(inDatabase3, ["GET", "placed"]) == .success(.bulk(Array(text: "3"))))
            #expect(driver.send(inDatabase0, ["GET", "placed"]) == .success(.null))
        }

        @Test func unixSocketWithDatabaseQuery() throws {
            let server = try RedisServerProcess()
            let endpoint = try RedisEndpoint(url: "unix://\(server.socketPath)?db=2")
            let connection = RedisConnection(loop: loop, endpoint: endpoint, name: "commands")
            connection.start()
            let checker = connect(to: server, database: 2)
            defer {
                shutDown(connection)
                shutDown(checker)
            }
            #expect(driver.run { connection.isConnected })
            #expect(driver.run { checker.isConnected })

            #expect(driver.send(connection, ["SET", "over-unix", "yes"]) == .success(.status("OK")))
            #expect(driver.send(checker, ["GET", "over-unix"]) == .success(.bulk(Array(text: "yes"))))
        }

        @Test func invalidDatabaseNeverConnects() throws {
            let server = try RedisServerProcess()
            // redis-server has 16 databases unless configured otherwise.
            let connection = connect(to: server, database: 99)
            defer { shutDown(connection) }
            var connectedCount = 0
            connection.onConnected = { connectedCount += 1 }

            #expect(driver.run { connection.reconnectAttemptCount >= 2 })
            #expect(connectedCount == 0)
            #expect(!connection.isConnected)
            #expect(driver.send(connection, ["PING"]) == .failure(.notConnected))
        }

        @Test func refusedConnectRetriesAndFailsFast() throws {
            let port = try RedisServerProcess.freeLoopbackPort()
            let endpoint = RedisEndpoint(address: .tcp(host: "127.0.0.1", port: port))
            let connection = RedisConnection(
                loop: loop, endpoint: endpoint, name: "commands",
                reconnectBaseMilliseconds: 10, reconnectMaxMilliseconds: 40)
            connection.start()
            defer { shutDown(connection) }

            #expect(driver.run { connection.reconnectAttemptCount >= 3 })
            #expect(!connection.isConnected)
            #expect(driver.send(connection, ["PING"]) == .failure(.notConnected))
        }

        @Test func connectTimeoutRetries() throws {
            let listener = try StalledListener()
            let connection = RedisConnection(
                loop: loop, endpoint: RedisEndpoint(address: .tcp(host: "127.0.0.1", port: listener.port)),
                name: "commands", reconnectBaseMilliseconds: 10, reconnectMaxMilliseconds: 20,
                connectTimeoutMilliseconds: 100)
            connection.start()
            defer { shutDown(connection) }

            #expect(driver.run { connection.reconnectAttemptCount >= 2 })
            #expect(!connection.isConnected)
            #expect(connection.lastFailureReason == "connect timed out after 100 ms")
        }

        @Test func connectionResetFailsPendingCommand() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server, commandTimeoutMilliseconds: 60_000)
            defer { shutDown(connection) }
            var disconnectReasons: [String] = []
            connection.onDisconnected = { disconnectReasons.append($0) }
            #expect(driver.run { connection.isConnected })

            server.pause()
            var result: Result<RedisValue, RedisCommandError>?
            connection.send(["PING"]) { result = $0 }
            // Let hiredis write the command, which then waits unread in the server's socket.
            driver.run(timeoutMilliseconds: 50) { false }
            server.crashWhilePaused()

            #expect(driver.run { result != nil })
            #expect(result == .failure(.connectionLost))
            #expect(disconnectReasons.count == 1)
        }

        @Test func releaseWithoutStopFailsPending() throws {
            let server = try RedisServerProcess()
            var connection: RedisConnection? = connect(to: server)
            #expect(driver.run { connection?.isConnected == true })

            var result: Result<RedisValue, RedisCommandError>?
            connection?.send(["PING"]) { result = $0 }
            connection = nil
            #expect(result == .failure(.connectionLost))
            driver.drain()
        }

        @Test func reconnectCyclesLeakNoDescriptors() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            var connectedCount = 0
            connection.onConnected = { connectedCount += 1 }
            #expect(driver.run { connectedCount == 1 })
            driver.drain()
            #expect(openConnectionCount(toPort: server.port) == 1)

            for cycle in 2...30 {
                connection.dropConnection(reason: "cycle")
                #expect(driver.run { connectedCount == cycle })
            }
            driver.drain()
            #expect(openConnectionCount(toPort: server.port) == 1)
        }

        @Test func stopFailsPendingCommands() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            #expect(driver.run { connection.isConnected })

            var results: [Result<RedisValue, RedisCommandError>] = []
            for _ in 0..<3 {
                connection.send(["PING"]) { results.append($0) }
            }
            connection.stop()
            #expect(results == Array(repeating: .failure(.connectionLost), count: 3))
            #expect(!connection.isConnected)

            #expect(driver.send(connection, ["PING"]) == .failure(.notConnected))
            driver.drain()
        }

        @Test func reconnectAfterServerRestart() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            var connectedCount = 0
            var disconnectReasons: [String] = []
            connection.onConnected = { connectedCount += 1 }
            connection.onDisconnected = { disconnectReasons.append($0) }

            #expect(driver.run { connectedCount == 1 })
            #expect(driver.send(connection, ["SET", "before", "1"]) == .success(.status("OK")))

            // Queued in hiredis but not yet written when the server dies.
            var inFlight: Result<RedisValue, RedisCommandError>?
            connection.send(["GET", "before"]) { inFlight = $0 }
            server.crash()

            #expect(driver.run { inFlight != nil })
            #expect(driver.run { disconnectReasons.count == 1 })
            #expect(inFlight == .failure(.connectionLost))

            let duringOutage = driver.send(connection, ["PING"])
            #expect(duringOutage == .failure(.notConnected))
            #expect(driver.run { connection.reconnectAttemptCount >= 2 })
            #expect(!connection.isConnected)

            try server.restart()
            #expect(driver.run { connectedCount == 2 })
            #expect(connection.reconnectCount == 1)
            #expect(driver.send(connection, ["SET", "after", "2"]) == .success(.status("OK")))
            #expect(driver.send(connection, ["GET", "after"]) == .success(.bulk(Array(text: "2"))))
        }

        @Test func dropConnectionReconnects() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            var connectedCount = 0
            var disconnectReasons: [String] = []
            connection.onConnected = { connectedCount += 1 }
            connection.onDisconnected = { disconnectReasons.append($0) }
            #expect(driver.run { connectedCount == 1 })

            var pendingResult: Result<RedisValue, RedisCommandError>?
            connection.send(["PING"]) { pendingResult = $0 }
            connection.dropConnection(reason: "test drop")
            #expect(!connection.isConnected)
            #expect(pendingResult == .failure(.connectionLost))
            #expect(disconnectReasons == ["test drop"])

            #expect(driver.run { connectedCount == 2 })
            #expect(driver.send(connection, ["PING"]) == .success(.status("PONG")))
        }

        @Test func dropInsideCompletionIsDeferred() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            var connectedCount = 0
            connection.onConnected = { connectedCount += 1 }
            #expect(driver.run { connectedCount == 1 })

            var results: [Result<RedisValue, RedisCommandError>] = []
            connection.send(["PING"]) { result in
                results.append(result)
                connection.dropConnection(reason: "dropped from a completion")
            }
            connection.send(["PING"]) { results.append($0) }

            #expect(driver.run { results.count == 2 })
            #expect(results.first == .success(.status("PONG")))
            #expect(driver.run { connectedCount == 2 })
        }

        @Test func commandTimeoutDropsConnection() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server, commandTimeoutMilliseconds: 300)
            defer {
                server.resume()
                shutDown(connection)
            }
            var disconnectReasons: [String] = []
            connection.onDisconnected = { disconnectReasons.append($0) }
            #expect(driver.run { connection.isConnected })

            server.pause()
            var first: Result<RedisValue, RedisCommandError>?
            connection.send(["PING"]) { first = $0 }
            #expect(driver.run(timeoutMilliseconds: 5_000) { first != nil })
            #expect(first == .failure(.timedOut))
            #expect(disconnectReasons.first?.contains("no reply within 300 ms") == true)

            server.resume()
            var answered = false
            #expect(
                driver.run(timeoutMilliseconds: 10_000) {
                    if !answered, connection.isConnected, connection.pendingCount == 0 {
                        connection.send(["PING"]) { result in answered = result == .success(.status("PONG")) }
                    }
                    return answered
                })
        }
    }
}
