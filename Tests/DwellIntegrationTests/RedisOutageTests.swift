import DwellClient
import Foundation
import Testing

@Suite("Redis outage", .serialized)
struct RedisOutageTests {
    @Test("publish during outage gets 503, held polls recover")
    func outageAndRecovery() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let poll = Background { try dwell.client(timeout: 60).poll(channels: ["up"], cursor: 0) }
        try waitUntil(10, "the poll to be held") { try dwell.heldPolls() == 1 }

        redis.stop()
        try waitUntil(15, "health to report Redis down") { try dwell.health().status == 503 }
        let response = try dwell.connection().request(
            "POST", "/api/messages", body: Array(#"{"channel":"up","data":1}"#.utf8))
        #expect(response.status == 503)
        #expect(try jsonObject(response)["error"] is String)
        #expect(try dwell.heldPolls() == 1)

        try redis.restart()
        try dwell.waitUntilHealthy(seconds: 20)
        // Redis came back empty, so the held poll learns that its epoch is gone;
        // polling again in the new epoch finds what was published since.
        let id = try dwell.client().publish(channel: "up", dataJSON: #""after""#)
        let result = try poll.value(timeout: 30)
        #expect(result.isReset)
        #expect(result.lastEventID == 0)
        let again = try dwell.client().poll(channels: ["up"], cursor: result.lastEventID, epoch: result.epoch)
        #expect(again.messages.contains { ($0["id"] as? NSNumber)?.uint64Value == id })
    }
}

@Suite("Lost-wakeup race", .serialized)
struct RaceTests {
    /// Publishes while polls arrive, many times over, and checks that every poll
    /// answered with messages got each message at most once and none was skipped.
    @Test("poll and publish at the same instant")
    func pollPublishRace() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, holdTimeout: 5)
        let publisher = try dwell.client()
        var cursor = try publisher.publish(channel: "race", dataJSON: "0")

        for round in 0..<150 {
            let poll = Background { try dwell.client(timeout: 20).poll(channels: ["race"], cursor: cursor) }
            let id = try publisher.publish(channel: "race", dataJSON: String(round))
            let result = try poll.value(timeout: 20)

            let ids = result.messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value }
            #expect(!result.isTimeout, "round \(round): message \(id) was never delivered")
            #expect(ids == [id], "round \(round): expected [\(id)], got \(ids)")
            cursor = id
        }
    }
}
