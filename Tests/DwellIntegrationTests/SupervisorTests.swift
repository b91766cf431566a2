import DwellClient
import Foundation
import Testing

/// A connection pinned to whichever worker accepted it, with that worker's pid.
struct PinnedConnection {
    let connection: HTTPClientConnection
    let pid: Int
    let slot: Int

    init(_ dwell: DwellUnderTest) throws {
        connection = try dwell.connection()
        let health = try jsonObject(try connection.request("GET", "/api/poll/health"))
        pid = (health["pid"] as? NSNumber)?.intValue ?? -1
        slot = (health["slot"] as? NSNumber)?.intValue ?? -1
    }
}

/// Held polls per worker slot, read from the health of fresh connections until
/// every slot of `dwell` has answered once.
func heldPollsBySlot(_ dwell: DwellUnderTest, workers: Int = 2) throws -> [Int: Int] {
    var seen: [Int: Int] = [:]
    for _ in 0..<100 where seen.count < workers {
        let health = try jsonObject(try dwell.connection().request("GET", "/api/poll/health"))
        if let slot = (health["slot"] as? NSNumber)?.intValue, let held = (health["heldPolls"] as? NSNumber)?.intValue {
            seen[slot] = held
        }
    }
    return seen
}

@Suite("Supervisor and workers", .serialized)
struct SupervisorTests {
    /// Opens connections until some land on each of the `workers` workers.
    private func connectionsOnEveryWorker(_ dwell: DwellUnderTest, workers: Int) throws -> [Int: [PinnedConnection]] {
        var bySlot: [Int: [PinnedConnection]] = [:]
        for _ in 0..<200 {
            let pinned = try PinnedConnection(dwell)
            bySlot[pinned.slot, default: []].append(pinned)
            if bySlot.count == workers, bySlot.values.allSatisfy({ $0.count >= 2 }) {
                return bySlot
            }
        }
        throw HarnessError("200 connections did not reach all \(workers) workers: \(bySlot.mapValues(\.count))")
    }

    @Test("killed worker replaced, other worker's polls untouched")
    func killOneWorker() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, workers: 2)
        let cursor = try dwell.client().publish(channel: "k", dataJSON: "0")
        let bySlot = try connectionsOnEveryWorker(dwell, workers: 2)
        let victim = bySlot[0]![0].pid
        let survivors = bySlot[1]!

        let request = Array("GET /api/poll?channels=k&lastEventId=\(cursor) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        for pinned in bySlot.values.joined() {
            try pinned.connection.write(request)
        }
        let expected = bySlot.mapValues(\.count)
        try waitUntil(10, "polls held on both workers") { try heldPollsBySlot(dwell) == expected }

        kill(Int32(victim), SIGKILL)
        let killedAt = Date()
        var replacement = -1
        try waitUntil(10, "slot 0 to serve with a new pid") {
            let pinned = try PinnedConnection(dwell)
            if pinned.slot == 0, pinned.pid != victim {
                replacement = pinned.pid
                return true
            }
            return false
        }
        #expect(replacement > 0)
        #expect(Date().timeIntervalSince(killedAt) < 2.0, "slot 0 took too long to come back")

        let id = try dwell.client().publish(channel: "k", dataJSON: "1")
        for pinned in survivors {
            let response = try pinned.connection.readResponse()
            #expect((try jsonObject(response)["lastEventId"] as? NSNumber)?.uint64Value == id)
        }
    }

    @Test("crash loop backs off")
    func crashLoopBackoff() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, workers: 1)
        var killed: Set<Int> = []
        for _ in 0..<3 {
            let pinned = try PinnedConnection(dwell)
            killed.insert(pinned.pid)
            kill(Int32(pinned.pid), SIGKILL)
            pinned.connection.close()
            try waitUntil(15, "a new worker") { !killed.contains(try PinnedConnection(dwell).pid) }
        }
        let delays = dwell.child.log.split(separator: "\n")
            .filter { $0.contains("event=supervisor.worker_exit") }
            .compactMap { line in line.split(separator: " ").first { $0.hasPrefix("restart_ms=") } }
            .compactMap { Int($0.dropFirst("restart_ms=".count)) }
        #expect(delays == [100, 200, 400], "restart delays in the log: \(delays)")
    }

    @Test("SIGTERM answers held polls and exits 0")
    func drainOnSigterm() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, workers: 2)
        let polls = (0..<4).map { _ in
            Background { try dwell.client(timeout: 30).poll(channels: ["drain"], cursor: 0) }
        }
        try waitUntil(10, "four held polls") { try heldPollsBySlot(dwell).values.reduce(0, +) == 4 }

        let started = Date()
        let status = dwell.child.stop(seconds: 15)
        #expect(status == 0)
        #expect(Date().timeIntervalSince(started) < 10)
        for poll in polls {
            let result = try poll.value(timeout: 5)
            #expect(result.isTimeout)
            #expect(result.reconnect)
        }
    }
}

@Suite("Supervisor liveness and start-up errors", .serialized)
struct SupervisorStartTests {
    @Test("stalled worker replaced")
    func stalledWorker() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, workers: 1, extra: ["--worker-stall-timeout", "1.5"])
        let stalled = try PinnedConnection(dwell).pid
        kill(Int32(stalled), SIGSTOP)
        defer { kill(Int32(stalled), SIGCONT) }

        try waitUntil(15, "a replacement worker") { try PinnedConnection(dwell).pid != stalled }
        #expect(dwell.child.log.contains("event=supervisor.worker_stalled"))
    }

    private func runDwell(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let child = try ChildUnderTest(name: "cli", executable: try dwellBinary(), arguments: arguments)
        let status = child.waitForExit(seconds: 20) ?? -1
        return (status, child.log)
    }

    @Test("port in use exits 1 before forking")
    func portInUse() throws {
        let redis = try RedisUnderTest()
        let (status, output) = try runDwell(["serve", "--port", String(redis.port), "--redis", redis.url])
        #expect(status == 1)
        #expect(output.contains("Address already in use"))
        #expect(!output.contains("worker_started"))
    }

    @Test("zero workers exits 1")
    func zeroWorkers() throws {
        let (status, output) = try runDwell(["serve", "--workers", "0", "--redis", "redis://127.0.0.1:1"])
        #expect(status == 1)
        #expect(output.contains("workers"))
    }

    @Test("invalid durations exit 2 naming the flag", arguments: ["0", "-1", "nan", "inf", "abc", "86401"])
    func invalidDuration(value: String) throws {
        let (status, output) = try runDwell(["serve", "--hold-timeout", value])
        #expect(status == 2)
        #expect(output.contains("--hold-timeout"))
    }

    @Test("unknown option exits 2")
    func unknownOption() throws {
        let (status, output) = try runDwell(["serve", "--colour"])
        #expect(status == 2)
        #expect(output.contains("--colour"))
    }
}
