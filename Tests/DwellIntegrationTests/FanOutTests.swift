import DwellClient
import Foundation
import Testing

@Suite("Fan-out", .serialized)
struct FanOutTests {
    @Test("2000 held polls all receive one message")
    func twoThousandPolls() throws {
        let count = 2_000
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let cursor = try dwell.client().publish(channel: "crowd", dataJSON: "0")

        var connections: [HTTPClientConnection] = []
        let request = Array("GET /api/poll?channels=crowd&lastEventId=\(cursor) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        for _ in 0..<count {
            let connection = try dwell.connection(timeout: 30)
            try connection.write(request)
            connections.append(connection)
        }
        try waitUntil(30, "\(count) held polls") { try dwell.heldPolls() == count }

        let id = try dwell.client().publish(channel: "crowd", dataJSON: #"{"to":"everyone"}"#)
        var delivered = 0
        for connection in connections {
            let response = try connection.readResponse()
            if response.status == 200, (try jsonObject(response)["lastEventId"] as? NSNumber)?.uint64Value == id {
                delivered += 1
            }
        }
        #expect(delivered == count)
        try waitUntil(10, "the held count to return to 0") { try dwell.heldPolls() == 0 }
    }
}
