import DwellClient
import Foundation
import Testing

/// Runs redis-cli against the test's own Redis.
func redisCommand(_ redis: RedisUnderTest, _ arguments: [String]) throws -> String {
    let child = try ChildUnderTest(
        name: "redis-cli", executable: try findProgram("redis-cli"),
        arguments: ["-p", String(redis.port)] + arguments)
    guard child.waitForExit(seconds: 10) == 0 else {
        throw HarnessError("redis-cli \(arguments) failed: \(child.log)")
    }
    return child.log.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// The pids of the direct children of `pid` whose command line contains `name`.
func childProcesses(of pid: Int32, named name: String) -> [Int32] {
    let list = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
    return list.split(separator: " ").compactMap { Int32($0) }.filter { child in
        let command = (try? String(contentsOfFile: "/proc/\(child)/cmdline", encoding: .utf8)) ?? ""
        return command.contains(name)
    }
}

@Suite("Epochs and retention gaps", .serialized)
struct EpochTests {
    @Test("flush under held polls answers reset")
    func flushResets() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let client = try dwell.client()
        _ = try client.publish(channel: "f", dataJSON: "1")
        let first = try client.poll(channels: ["f"], cursor: 0)
        let epoch = try #require(first.epoch)

        let held = Background { try dwell.client().poll(channels: ["f"], cursor: first.lastEventID, epoch: epoch) }
        try waitUntil(10, "the poll to be held") { try dwell.heldPolls() == 1 }
        _ = try redisCommand(redis, ["FLUSHALL"])
        let id = try client.publish(channel: "f", dataJSON: "2")

        let answer = try held.value()
        #expect(answer.isReset)
        #expect(answer.epoch != epoch)
        let replay = try client.poll(channels: ["f"], cursor: answer.lastEventID, epoch: answer.epoch)
        #expect(replay.messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value } == [id])
        #expect(!replay.isReset)
    }

    @Test("lost counter starts a new epoch")
    func lostCounter() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let client = try dwell.client()
        for n in 0..<3 {
            _ = try client.publish(channel: "c", dataJSON: String(n))
        }
        let before = try client.poll(channels: ["c"], cursor: 0)
        _ = try redisCommand(redis, ["DEL", "dwell:id"])

        // Id 1 exists in the old epoch's log; the new epoch must not answer it again.
        let id = try client.publish(channel: "c", dataJSON: #""new""#)
        #expect(id == 1)
        let stale = try client.poll(channels: ["c"], cursor: 0, epoch: before.epoch)
        #expect(stale.isReset)
        let fresh = try client.poll(channels: ["c"], cursor: 0, epoch: stale.epoch)
        #expect(fresh.messages.count == 1)
        #expect((fresh.messages.first?["data"] as? String) == "new")
    }

    @Test("cursor behind retention gets missed")
    func retentionGap() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, extra: ["--retention-count", "2"])
        let client = try dwell.client()
        let ids = try (0..<5).map { try client.publish(channel: "g", dataJSON: String($0)) }

        let result = try client.poll(channels: ["g"], cursor: ids[0])
        #expect(result.missed)
        #expect(result.messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value } == [ids[3], ids[4]])

        let current = try client.poll(channels: ["g"], cursor: ids[3])
        #expect(!current.missed)

        let range = try jsonObject(
            try dwell.connection().request("GET", "/api/messages/range?channels=g&from=\(ids[0])&to=\(ids[4])"))
        #expect(range["missed"] as? Bool == true)
        #expect((range["retainedFrom"] as? NSNumber)?.uint64Value == ids[3])
    }

    @Test("data dir keeps ids across Redis restart")
    func dataDirectoryRestart() throws {
        let directory = NSTemporaryDirectory() + "dwell-data-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dwell = try DwellUnderTest(redis: nil, extra: ["--data-dir", directory])
        let client = try dwell.client()
        let id = try client.publish(channel: "d", dataJSON: "1")
        let first = try client.poll(channels: ["d"], cursor: 0)

        let held = Background { try dwell.client(timeout: 60).poll(channels: ["d"], cursor: id, epoch: first.epoch) }
        try waitUntil(10, "the poll to be held") { try dwell.heldPolls() == 1 }
        let redisPid = try #require(childProcesses(of: dwell.child.pid, named: "redis-server").first)
        kill(redisPid, SIGTERM)
        try waitUntil(20, "a restarted redis-server") {
            let pids = childProcesses(of: dwell.child.pid, named: "redis-server")
            return !pids.isEmpty && !pids.contains(redisPid)
        }
        try dwell.waitUntilHealthy(seconds: 20)

        let next = try client.publish(channel: "d", dataJSON: "2")
        #expect(next == id + 1)
        let answer = try held.value(timeout: 30)
        #expect(!answer.isReset)
        #expect(answer.messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value } == [next])
    }
}

@Suite("Epoch and gap edge cases", .serialized)
struct EpochEdgeTests {
    @Test("flush resets a held poll with no publish")
    func flushWithoutPublish() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, extra: ["--heartbeat-interval", "0.5"])
        let client = try dwell.client()
        let id = try client.publish(channel: "quiet", dataJSON: "1")
        let first = try client.poll(channels: ["quiet"], cursor: 0)

        let held = Background { try dwell.client().poll(channels: ["quiet"], cursor: id, epoch: first.epoch) }
        try waitUntil(10, "the poll to be held") { try dwell.heldPolls() == 1 }
        _ = try redisCommand(redis, ["FLUSHALL"])

        // Well before the 25 s hold: the heartbeat notices the lost epoch.
        let answer = try held.value(timeout: 10)
        #expect(answer.isReset)
        #expect(!answer.isTimeout)
    }

    @Test("expired log then publish reports missed")
    func expiredLogThenPublish() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, extra: ["--retention-seconds", "0.5"])
        let client = try dwell.client()
        let first = try client.publish(channel: "brief", dataJSON: "1")
        _ = try client.publish(channel: "brief", dataJSON: "2")
        let epoch = try #require(try client.poll(channels: ["brief"], cursor: 0).epoch)
        try waitUntil(10, "the log to expire") {
            try redisCommand(redis, ["EXISTS", "dwell:log:\(epoch):brief"]) == "0"
        }
        let third = try client.publish(channel: "brief", dataJSON: "3")

        let result = try client.poll(channels: ["brief"], cursor: first)
        #expect(result.missed)
        #expect(result.messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value } == [third])
    }
}
