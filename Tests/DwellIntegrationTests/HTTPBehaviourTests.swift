import DwellClient
import Foundation
import Testing

/// A publish request with the given body and its Content-Length.
func post(_ body: String) -> String {
    "POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
}

@Suite("HTTP behaviour of the worker", .serialized)
struct HTTPBehaviourTests {
    @Test("keep-alive serves several requests")
    func keepAlive() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let connection = try dwell.connection()
        for _ in 0..<3 {
            let response = try connection.request("GET", "/api/poll/health")
            #expect(response.status == 200)
        }
    }

    @Test("pipelined requests wait behind a held poll")
    func pipelining() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let connection = try dwell.connection()
        let requests =
            "GET /api/poll?channels=pipe&lastEventId=0 HTTP/1.1\r\nHost: x\r\n\r\n"
            + "GET /api/poll/health HTTP/1.1\r\nHost: x\r\n\r\n"
        try connection.write(Array(requests.utf8))
        try waitUntil(10, "the poll to be held") { try dwell.heldPolls() == 1 }

        let id = try dwell.client().publish(channel: "pipe", dataJSON: "1")
        let first = try connection.readResponse()
        let second = try connection.readResponse()
        #expect((try jsonObject(first)["lastEventId"] as? NSNumber)?.uint64Value == id)
        #expect(try jsonObject(second)["status"] as? String == "ok")
    }

    @Test("HTTP/1.0 request closes after the answer")
    func http10() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let connection = try dwell.connection()
        try connection.write(Array("GET /api/poll/health HTTP/1.0\r\n\r\n".utf8))
        let response = try connection.readResponse()
        #expect(response.status == 200)
        #expect(connection.isClosedByPeer(waitMilliseconds: 2_000))
    }

    @Test(
        "malformed requests get their status codes",
        arguments: [
            ("GET /api/poll?channels=bad%20name HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET /api/poll?channels=a&lastEventId=-3 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET /api/poll?channels=a&limit=0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
            ("DELETE /api/poll HTTP/1.1\r\nHost: x\r\n\r\n", 405),
            ("HEAD /api/poll?channels=a HTTP/1.1\r\nHost: x\r\n\r\n", 405),
            ("GARBAGE\r\n\r\n", 400),
            ("GET /api/poll/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
            (post("{bad}"), 400),
            (post(#"{"channel":"a"}"#), 400),
            (post(#"{"data":1}"#), 400),
            (post(#"{"channel":"a b","data":1}"#), 400),
            (post(#"{"channel":7,"data":1}"#), 400),
            (post(#"{"channel":"a","data":"\ud800"}"#), 400),
            (post(#"[1,2]"#), 400),
            (post(#"{"channel":"a","data":1} trailing"#), 400),
            ("POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n\r\n", 413),
            ("GET /\(String(repeating: "a", count: 9000)) HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 9000))\r\n\r\n", 431),
        ])
    func malformed(request: String, status: Int) throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let connection = try dwell.connection()
        try connection.write(Array(request.utf8))
        let response = try connection.readResponse(isHead: request.hasPrefix("HEAD"))
        #expect(response.status == status, "\(response.bodyText)")
        if status == 405 {
            #expect(response.header("allow") != nil)
        }
        if !request.hasPrefix("HEAD") {
            #expect(try jsonObject(response)["error"] is String)
        }

        // The worker survives and serves the next client.
        #expect(try dwell.health().status == 200)
        #expect(try dwell.heldPolls() == 0)
    }

    @Test("absolute-form target accepted")
    func absoluteForm() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let response = try dwell.connection().request("GET", "http://127.0.0.1:\(dwell.port)/api/poll/health")
        #expect(response.status == 200)
    }

    @Test("HEAD on health has headers only")
    func headHealth() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let response = try dwell.connection().request("HEAD", "/api/poll/health")
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
        #expect(Int(response.header("content-length") ?? "") ?? 0 > 0)
    }

    @Test("chunked publish body accepted")
    func chunkedBody() throws {
        let redis = try RedisUnderTest()
        let dwell = try DwellUnderTest(redis: redis)
        let connection = try dwell.connection()
        let body = #"{"channel":"ch","data":[1,2]}"#
        let request =
            "POST /api/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n0\r\n\r\n"
        try connection.write(Array(request.utf8))
        let response = try connection.readResponse()
        #expect(response.status == 200)
        #expect(try jsonObject(response)["success"] as? Bool == true)
    }
}
