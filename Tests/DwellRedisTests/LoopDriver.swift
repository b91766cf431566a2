import DwellEventLoop
import DwellRedis

/// Drives the shared libuv loop from a test until a condition is true or a deadline passes.
struct LoopDriver {
    let loop: EventLoop

    /// Runs the loop until `condition` is true, or returns false if `timeoutMilliseconds`
    /// pass first. A 10 ms ticker keeps a blocking iteration from waiting longer.
    @discardableResult
    func run(timeoutMilliseconds: Int = 5_000, until condition: () -> Bool) -> Bool {
        let ticker = LoopTimer(loop: loop) {}
        ticker.start(afterMilliseconds: 10, repeatMilliseconds: 10)
        defer {
            ticker.close()
            loop.runOnce(blocking: false)
        }

        let deadline = ContinuousClock.now.advanced(by: .milliseconds(timeoutMilliseconds))
        while !condition() {
            if ContinuousClock.now >= deadline {
                return false
            }
            loop.runOnce(blocking: true)
        }
        return true
    }

    /// Runs a few non-blocking iterations so that closed handles finish closing.
    func drain() {
        for _ in 0..<8 {
            loop.runOnce(blocking: false)
        }
    }

    /// Sends a command and runs the loop until its completion, or returns nil on timeout.
    func send(
        _ connection: RedisConnection, _ arguments: [String], timeoutMilliseconds: Int = 5_000
    ) -> Result<RedisValue, RedisCommandError>? {
        send(connection, arguments.map { Array($0.utf8) }, timeoutMilliseconds: timeoutMilliseconds)
    }

    func send(
        _ connection: RedisConnection, _ arguments: [[UInt8]], timeoutMilliseconds: Int = 5_000
    ) -> Result<RedisValue, RedisCommandError>? {
        var result: Result<RedisValue, RedisCommandError>?
        connection.send(arguments) { result = $0 }
        run(timeoutMilliseconds: timeoutMilliseconds) { result != nil }
        return result
    }

    func evaluate(
        _ connection: RedisConnection, _ script: RedisScript, keys: [String], arguments: [[UInt8]]
    ) -> Result<RedisValue, RedisCommandError>? {
        var result: Result<RedisValue, RedisCommandError>?
        connection.evaluate(script, keys: keys.map { Array($0.utf8) }, arguments: arguments) { result = $0 }
        run { result != nil }
        return result
    }
}

extension Array where Element == UInt8 {
    init(text: String) {
        self = Array(text.utf8)
    }
}
