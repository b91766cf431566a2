import DwellClient
import Foundation
import Testing

@Suite("Polls against real Redis", .serialized)
struct PollTests {
    @Test("held poll answered by publish")
    func heldPollAnsweredByPublish() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let cursor = try dwell.client().publish(channel: "news", dataJSON: #"{"n":0}"#)

        let poll = Background { try dwell.client().poll(channels: ["news"], cursor: cursor) }
        try waitUntil(10, "the poll to be held") { try dwell.heldPolls() == 1 }
        let id = try dwell.client().publish(channel: "news", dataJSON: #"{"n":1}"#)

        let result = try poll.value()
        #expect(result.messages.count == 1)
        #expect((result.messages.first?["id"] as? NSNumber)?.uint64Value == id)
        #expect((result.messages.first?["data"] as? [String: Any])?["n"] as? Int == 1)
        #expect(result.messages.first?["channel"] as? String == "news")
        #expect(result.lastEventID == id)
        #expect(!result.isTimeout)
        try waitUntil(5, "the held count to return to 0") { try dwell.heldPolls() == 0 }
    }

    @Test("timeout answer keeps the cursor")
    func timeoutAnswer() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, holdTimeout: 0.5)
        let cursor = try dwell.client().publish(channel: "elsewhere", dataJSON: "1")
        let response = try dwell.connection().request("GET", "/api/poll?channels=quiet&lastEventId=\(cursor)")
        let object = try jsonObject(response)

        #expect(response.status == 200)
        #expect(response.header("cache-control") == "no-store")
        #expect(object["timeout"] as? Bool == true)
        #expect((object["lastEventId"] as? NSNumber)?.uint64Value == cursor)
        #expect(object["epoch"] is String)
        #expect((object["messages"] as? [Any])?.isEmpty == true)
        #expect(object["hasMore"] as? Bool == false)
    }

    @Test("replay after cursor with limit")
    func replayWithLimit() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let client = try dwell.client()
        var ids: [UInt64] = []
        for n in 0..<5 {
            ids.append(try client.publish(channel: "log", dataJSON: String(n)))
        }

        let first = try client.poll(channels: ["log"], cursor: ids[0], limit: 2)
        #expect(first.messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value } == [ids[1], ids[2]])
        #expect(first.hasMore)
        #expect(first.lastEventID == ids[2])

        let second = try client.poll(channels: ["log"], cursor: first.lastEventID, limit: 2)
        #expect(second.messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value } == [ids[3], ids[4]])
        #expect(!second.hasMore)

        let everything = try client.poll(channels: ["log"], cursor: 0)
        #expect(everything.messages.count == 5)
    }

    @Test("poll on two channels merges by id")
    func twoChannels() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let client = try dwell.client()
        let a1 = try client.publish(channel: "a", dataJSON: "1")
        let b1 = try client.publish(channel: "b", dataJSON: "2")
        _ = try client.publish(channel: "c", dataJSON: "3")
        let a2 = try client.publish(channel: "a", dataJSON: "4")

        let result = try client.poll(channels: ["a", "b"], cursor: 0)
        #expect(result.messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value } == [a1, b1, a2])

        let held = Background { try dwell.client().poll(channels: ["a", "b"], cursor: a2) }
        try waitUntil(10, "the poll to be held") { try dwell.heldPolls() == 1 }
        let b2 = try client.publish(channel: "b", dataJSON: "5")
        #expect(try held.value().lastEventID == b2)
    }

    @Test("no cursor waits for new messages only")
    func noCursor() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis, holdTimeout: 0.5)
        let client = try dwell.client()
        let old = try client.publish(channel: "fresh", dataJSON: "1")

        let timeout = try client.poll(channels: ["fresh"], cursor: nil)
        #expect(timeout.isTimeout)
        #expect(timeout.lastEventID == old)
    }

    @Test("Last-Event-ID header sets the cursor")
    func lastEventIDHeader() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let client = try dwell.client()
        let first = try client.publish(channel: "sse", dataJSON: "1")
        let second = try client.publish(channel: "sse", dataJSON: "2")

        let response = try dwell.connection().request(
            "GET", "/api/poll?channels=sse", headers: [("Last-Event-ID", String(first))])
        #expect((try jsonObject(response)["lastEventId"] as? NSNumber)?.uint64Value == second)
    }

    @Test("client disconnect releases the poll")
    func disconnectRelease() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        var connections: [HTTPClientConnection] = []
        for _ in 0..<3 {
            let connection = try dwell.connection()
            try connection.write(Array("GET /api/poll?channels=gone&lastEventId=0 HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            connections.append(connection)
        }
        try waitUntil(10, "three held polls") { try dwell.heldPolls() == 3 }

        connections.forEach { $0.close() }
        try waitUntil(10, "the held count to return to 0") { try dwell.heldPolls() == 0 }
    }

    @Test("publish with the same Idempotency-Key stores once")
    func idempotentPublish() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let client = try dwell.client()
        let first = try client.publish(channel: "pay", dataJSON: "1", idempotencyKey: "order-17")
        let again = try client.publish(channel: "pay", dataJSON: "1", idempotencyKey: "order-17")
        #expect(first == again)

        let result = try client.poll(channels: ["pay"], cursor: 0)
        #expect(result.messages.count == 1)
    }

    @Test("range returns the ids asked for")
    func range() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let client = try dwell.client()
        let ids = try (0..<4).map { try client.publish(channel: "r", dataJSON: String($0)) }

        let response = try dwell.connection().request(
            "GET", "/api/messages/range?channels=r&from=\(ids[1])&to=\(ids[2])")
        let messages = try jsonObject(response)["messages"] as? [[String: Any]] ?? []
        #expect(response.status == 200)
        #expect(messages.compactMap { ($0["id"] as? NSNumber)?.uint64Value } == [ids[1], ids[2]])
    }
}
