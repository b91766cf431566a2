import DwellEventLoop
import Testing

@testable import DwellRedis

extension RedisLoopTests {
    @Suite
    struct RedisScriptTests {
        let loop = RedisLoopTests.loop
        var driver: LoopDriver { LoopDriver(loop: loop) }

        /// Returns its key and first argument, and counts its runs in `<key>:runs`.
        let script = RedisScript(
            source: "local runs = redis.call('INCR', KEYS[1] .. ':runs') return {KEYS[1], ARGV[1], runs}")

        private func connect(to server: RedisServerProcess) -> RedisConnection {
            let connection = RedisConnection(
                loop: loop, endpoint: RedisEndpoint(address: .tcp(host: "127.0.0.1", port: server.port)),
                name: "commands")
            connection.start()
            return connection
        }

        private func shutDown(_ connection: RedisConnection) {
            connection.stop()
            driver.drain()
        }

        /// Reads `calls=N` of one command from `INFO commandstats`, which is 0 if the
        /// command never ran.
        private func callCount(of command: String, on connection: RedisConnection) -> Int {
            guard case .success(let info) = driver.send(connection, ["INFO", "commandstats"]),
                let text = info.string
            else { return -1 }
            let prefix = "cmdstat_\(command):calls="
            for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix(prefix) {
                let digits = line.dropFirst(prefix.count).prefix { $0.isNumber }
                return Int(digits) ?? -1
            }
            return 0
        }

        private func expectedReply(runs: Int64, argument: [UInt8]) -> Result<RedisValue, RedisCommandError> {
            .success(.array([.bulk(Array(text: "counted")), .bulk(argument), .integer(runs)]))
        }

        @Test func evaluateLearnsShaAndUsesEvalsha() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            #expect(driver.run { connection.isConnected })
            #expect(script.sha1 == nil)

            let binaryArgument: [UInt8] = [0x00, 0xFF, 0x0D, 0x0A]
            let first = driver.evaluate(connection, script, keys: ["counted"], arguments: [binaryArgument])
            #expect(first == expectedReply(runs: 1, argument: binaryArgument))
            #expect(driver.run { script.sha1 != nil })
            #expect(script.sha1?.count == 40)

            let sha1 = try #require(script.sha1)
            let exists = driver.send(connection, ["SCRIPT", "EXISTS", sha1])
            #expect(exists == .success(.array([.integer(1)])))

            let second = driver.evaluate(connection, script, keys: ["counted"], arguments: [Array(text: "b")])
            #expect(second == expectedReply(runs: 2, argument: Array(text: "b")))
            #expect(callCount(of: "evalsha", on: connection) == 1)
            #expect(callCount(of: "eval", on: connection) == 1)
        }

        @Test func noscriptFallsBackToEval() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            #expect(driver.run { connection.isConnected })

            _ = driver.evaluate(connection, script, keys: ["counted"], arguments: [Array(text: "a")])
            #expect(driver.run { script.sha1 != nil })
            #expect(driver.send(connection, ["SCRIPT", "FLUSH"]) == .success(.status("OK")))

            let afterFlush = driver.evaluate(connection, script, keys: ["counted"], arguments: [Array(text: "c")])
            #expect(afterFlush == expectedReply(runs: 2, argument: Array(text: "c")))
            #expect(callCount(of: "evalsha", on: connection) == 1)
            #expect(callCount(of: "eval", on: connection) == 2)

            // The fallback loaded the script again, so the next call needs one EVALSHA.
            let sha1 = try #require(script.sha1)
            #expect(driver.run { !script.digest.isLoading })
            #expect(driver.send(connection, ["SCRIPT", "EXISTS", sha1]) == .success(.array([.integer(1)])))
            let next = driver.evaluate(connection, script, keys: ["counted"], arguments: [Array(text: "d")])
            #expect(next == expectedReply(runs: 3, argument: Array(text: "d")))
            #expect(callCount(of: "evalsha", on: connection) == 2)
        }

        @Test func scriptErrorIsServerFailure() throws {
            let server = try RedisServerProcess()
            let connection = connect(to: server)
            defer { shutDown(connection) }
            #expect(driver.run { connection.isConnected })

            let failing = RedisScript(source: "return redis.call('NOSUCHCOMMAND')")
            let result = driver.evaluate(connection, failing, keys: [], arguments: [])
            guard case .failure(.server(let message)) = result else {
                Issue.record("a failing script returned \(String(describing: result))")
                return
            }
            #expect(message.contains("Unknown Redis command"))
            #expect(connection.isConnected)
        }

        @Test func evaluateWhileDisconnectedFailsFast() throws {
            let port = try RedisServerProcess.freeLoopbackPort()
            let connection = RedisConnection(
                loop: loop, endpoint: RedisEndpoint(address: .tcp(host: "127.0.0.1", port: port)), name: "commands")
            defer { shutDown(connection) }

            let result = driver.evaluate(connection, script, keys: ["counted"], arguments: [])
            #expect(result == .failure(.notConnected))
            #expect(script.sha1 == nil)
        }
    }
}
