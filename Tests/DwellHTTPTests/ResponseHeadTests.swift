import Testing

@testable import DwellHTTP

@Suite struct ResponseHeadTests {
    @Test func headFieldsInOrder() {
        let head = ResponseHead.encode(
            status: 201,
            headers: [("Content-Type", "application/json"), ("Date", "dropped"), ("X-A", "1")],
            contentLength: 12,
            connection: .keepAlive,
            date: Array("Thu, 01 Jan 1970 00:00:00 GMT".utf8))

        #expect(
            String(decoding: head, as: UTF8.self)
                == "HTTP/1.1 201 Created\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 12\r\n"
                + "Connection: keep-alive\r\nContent-Type: application/json\r\nX-A: 1\r\n\r\n")
    }

    @Test func noContentLengthWhenNil() {
        let head = ResponseHead.encode(status: 204, headers: [], contentLength: nil, connection: .close, date: [])
        let text = String(decoding: head, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 204 No Content\r\n"))
        #expect(!text.contains("Content-Length"))
        #expect(text.hasSuffix("Connection: close\r\n\r\n"))
    }

    @Test func reasonPhrases() {
        #expect(ResponseHead.reasonPhrase(for: 200) == "OK")
        #expect(ResponseHead.reasonPhrase(for: 404) == "Not Found")
        #expect(ResponseHead.reasonPhrase(for: 431) == "Request Header Fields Too Large")
        #expect(ResponseHead.reasonPhrase(for: 505) == "HTTP Version Not Supported")
        #expect(ResponseHead.reasonPhrase(for: 299) == "")
        #expect(ResponseHead.reasonPhrase(for: -1) == "")
    }

    @Test func imfFixdateFormat() {
        #expect(HTTPDateCache.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDateCache.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDateCache.format(1_709_251_199) == "Thu, 29 Feb 2024 23:59:59 GMT")
    }

    @Test func errorBodyEscaped() {
        let response = HTTPResponse.error(status: 400, message: "bad \"value\" \\ here\n")
        #expect(String(decoding: response.body.bytes, as: UTF8.self) == "{\"error\":\"bad \\\"value\\\" \\\\ here \"}")
        #expect(response.closesConnection)
        #expect(response.headers.first?.1 == "application/json; charset=utf-8")
    }

    @Test func sharedBytesCopiesInput() {
        var source: [UInt8] = [1, 2, 3]
        let shared = SharedBytes(source)
        source[0] = 9
        #expect(shared.bytes == [1, 2, 3])
        #expect(shared.count == 3)
        #expect(SharedBytes("").count == 0)
        #expect(SharedBytes("").bytes.isEmpty)
    }
}
