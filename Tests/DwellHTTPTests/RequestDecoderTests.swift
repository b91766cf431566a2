import Testing

@testable import DwellHTTP

/// The outcome of feeding a byte stream to one decoder, the way a connection does:
/// each request is taken at once and decoding resumes on the bytes after it.
struct DecodedStream {
    var requests: [HTTPRequest] = []
    var error: RequestDecodingError?
    var continueCount = 0
    /// Set when `.needsMoreInput` came back without consuming all the bytes.
    var leftUnconsumedBytes = false

    /// One line per request with every field, for comparing runs split differently.
    var summary: [String] {
        requests.map(Self.describe) + [error.map { "error \($0)" } ?? "no error"]
    }

    static func describe(_ request: HTTPRequest) -> String {
        let headers = request.headers.map { "\($0.name)=\($0.value)" }.joined(separator: "|")
        return "\(request.method.name) \(request.target) path=\(request.path) query=\(request.query) "
            + "HTTP/\(request.versionMajor).\(request.versionMinor) keepAlive=\(request.keepAlive) "
            + "headers=\(headers) body=\(String(decoding: request.body, as: UTF8.self))"
    }
}

func decode(_ chunks: [[UInt8]], limits: HTTPLimits = HTTPLimits()) -> DecodedStream {
    let decoder = RequestDecoder(limits: limits)
    var stream = DecodedStream()
    var buffered: [UInt8] = []

    for chunk in chunks {
        buffered += chunk
        while !buffered.isEmpty {
            let (consumed, outcome) = buffered.withUnsafeBytes { decoder.decode($0) }
            let wasAllConsumed = consumed == buffered.count
            buffered.removeFirst(consumed)

            switch outcome {
            case .needsMoreInput:
                if decoder.takeContinueExpectation() {
                    stream.continueCount += 1
                }
                if !wasAllConsumed {
                    stream.leftUnconsumedBytes = true
                    return stream
                }
            case .request(let request):
                stream.requests.append(request)
            case .failure(let error):
                stream.error = error
                return stream
            }
        }
    }
    return stream
}

func decode(_ text: String, limits: HTTPLimits = HTTPLimits()) -> DecodedStream {
    decode([Array(text.utf8)], limits: limits)
}

/// Decodes `text` whole, then split in two at every offset, then one byte at a time,
/// and expects the same requests and error every time.
func expectSameOutcomeAtEverySplit(
    _ text: String, limits: HTTPLimits = HTTPLimits(), sourceLocation: SourceLocation = #_sourceLocation
) -> DecodedStream {
    let bytes = Array(text.utf8)
    let whole = decode([bytes], limits: limits)
    #expect(!whole.leftUnconsumedBytes, sourceLocation: sourceLocation)

    for offset in 0...bytes.count {
        let split = decode([Array(bytes[..<offset]), Array(bytes[offset...])], limits: limits)
        #expect(split.summary == whole.summary, "split at \(offset)", sourceLocation: sourceLocation)
        #expect(!split.leftUnconsumedBytes, "split at \(offset)", sourceLocation: sourceLocation)
    }

    let byteByByte = decode(bytes.map { [$0] }, limits: limits)
    #expect(byteByByte.summary == whole.summary, "byte by byte", sourceLocation: sourceLocation)
    return whole
}

@Suite struct RequestDecoderTests {
    @Test func getWithHeadersAndQuery() throws {
        let stream = expectSameOutcomeAtEverySplit(
            "GET /api/poll?channels=a,b&lastEventId=7 HTTP/1.1\r\n"
                + "Host: example.com\r\nX-Custom-Header:   spaced value  \r\nAccept: */*\r\n\r\n")

        #expect(stream.error == nil)
        let request = try #require(stream.requests.first)
        #expect(stream.requests.count == 1)
        #expect(request.method == .get)
        #expect(request.target == "/api/poll?channels=a,b&lastEventId=7")
        #expect(request.path == "/api/poll")
        #expect(request.query == "channels=a,b&lastEventId=7")
        #expect(request.versionMajor == 1)
        #expect(request.versionMinor == 1)
        #expect(request.keepAlive)
        #expect(request.headers.map(\.name) == ["host", "x-custom-header", "accept"])
        #expect(request.header("x-custom-header") == "spaced value")
        #expect(request.header("host") == "example.com")
        #expect(request.header("missing") == nil)
        #expect(request.body.isEmpty)
    }

    @Test func postWithContentLengthBody() throws {
        let body = "{\"channel\":\"news\",\"data\":{\"text\":\"hello\"}}"
        let stream = expectSameOutcomeAtEverySplit(
            "POST /api/messages HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")

        let request = try #require(stream.requests.first)
        #expect(request.method == .post)
        #expect(request.path == "/api/messages")
        #expect(request.query == "")
        #expect(String(decoding: request.body, as: UTF8.self) == body)
    }

    @Test func chunkedBodyWithExtensionAndTrailer() throws {
        let stream = expectSameOutcomeAtEverySplit(
            "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\n7;name=value\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n")

        let request = try #require(stream.requests.first)
        #expect(String(decoding: request.body, as: UTF8.self) == "hello, world")
        #expect(request.header("transfer-encoding") == "chunked")
        #expect(request.header("x-trailer") == nil)
    }

    @Test func pipelinedRequestsInOrder() {
        let stream = expectSameOutcomeAtEverySplit(
            "GET /first HTTP/1.1\r\nHost: h\r\n\r\n"
                + "POST /second HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                + "\r\nGET /third?x HTTP/1.1\r\nHost: h\r\n\r\n")

        #expect(stream.error == nil)
        #expect(stream.requests.map(\.path) == ["/first", "/second", "/third"])
        #expect(stream.requests.map(\.body.count) == [0, 3, 0])
        #expect(stream.requests.last?.query == "x")
    }

    @Test func keepAliveByVersionAndConnection() {
        let cases: [(String, Bool)] = [
            ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        ]
        for (text, keepAlive) in cases {
            let stream = expectSameOutcomeAtEverySplit(text)
            #expect(stream.requests.first?.keepAlive == keepAlive, "\(text)")
        }
    }

    @Test func http10VersionReported() throws {
        let stream = decode("GET /old HTTP/1.0\r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.versionMajor == 1)
        #expect(request.versionMinor == 0)
    }

    @Test func absoluteFormReducedToPath() throws {
        let stream = expectSameOutcomeAtEverySplit(
            "GET http://example.com:8080/api/poll?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.target == "http://example.com:8080/api/poll?x=1")
        #expect(request.path == "/api/poll")
        #expect(request.query == "x=1")
    }

    @Test func absoluteFormWithoutPath() throws {
        let stream = decode("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.path == "/")
        #expect(request.query == "")
    }

    @Test func asteriskFormForOptions() throws {
        let stream = decode("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.method == .options)
        #expect(request.path == "*")
    }

    @Test func fragmentDroppedFromQuery() throws {
        let stream = decode("GET /a/b?x=1#top HTTP/1.1\r\nHost: h\r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.path == "/a/b")
        #expect(request.query == "x=1")
    }

    @Test func methodsMapped() {
        let cases: [(String, HTTPMethod)] = [
            ("GET", .get), ("HEAD", .head), ("POST", .post), ("PUT", .put), ("DELETE", .delete),
            ("OPTIONS", .options), ("PATCH", .other("PATCH")),
        ]
        for (name, method) in cases {
            let stream = decode("\(name) /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
            #expect(stream.requests.first?.method == method, "\(name)")
            #expect(stream.requests.first?.method.name == name)
        }
    }

    @Test func emptyHeaderValueKept() throws {
        let stream = expectSameOutcomeAtEverySplit("GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\nX-Blank:   \r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.headers.map(\.name) == ["x-empty", "host", "x-blank"])
        #expect(request.header("x-empty") == "")
        #expect(request.header("x-blank") == "")
        #expect(request.header("host") == "h")
    }

    @Test func repeatedHeadersKeptInOrder() throws {
        let stream = decode("GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.headers.filter { $0.name == "x-a" }.map(\.value) == ["1", "2"])
        #expect(request.header("x-a") == "1")
    }

    @Test func continueExpectedForHTTP11Body() {
        let stream = expectSameOutcomeAtEverySplit(
            "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok")
        #expect(stream.requests.count == 1)

        let headersOnly = decode(
            "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n")
        #expect(headersOnly.continueCount == 1)
        #expect(headersOnly.requests.isEmpty)
    }

    @Test func continueNotExpectedWithoutBodyOrForHTTP10() {
        let noBody = decode("POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
        #expect(noBody.continueCount == 0)
        #expect(noBody.requests.count == 1)

        let http10 = decode("POST /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        #expect(http10.continueCount == 0)
        #expect(http10.requests.isEmpty)
        #expect(http10.error == nil)
    }

    @Test func unknownExpectationRejected() {
        let stream = expectSameOutcomeAtEverySplit("GET / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n")
        #expect(stream.error == .expectationFailed("something"))
        #expect(stream.error?.status == 417)
    }

    @Test func malformedRequestsRejected() {
        let inputs = [
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "GET /\u{7}path HTTP/1.1\r\n\r\n",
            "GET /a\tb HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\u{0}b\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nBad Trailer: x\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n",
            "GET / FTP/1.1\r\n\r\n",
            "\u{16}\u{3}\u{1}\u{0}\u{a5}\u{1}\u{0}",
        ]
        for text in inputs {
            let stream = expectSameOutcomeAtEverySplit(text)
            #expect(stream.requests.isEmpty, "\(text.debugDescription)")
            #expect(stream.error?.status == 400, "\(text.debugDescription)")
        }
    }

    @Test func bareLineFeedsAccepted() throws {
        // RFC 9112 section 2.2 lets a recipient accept a lone LF as a line terminator.
        let stream = expectSameOutcomeAtEverySplit("GET /lf HTTP/1.1\nHost: h\n\n")
        let request = try #require(stream.requests.first)
        #expect(request.path == "/lf")
        #expect(request.header("host") == "h")
    }

    @Test func foldedHeaderValueJoined() throws {
        let stream = expectSameOutcomeAtEverySplit("GET / HTTP/1.1\r\nX-Folded: a\r\n  b\r\nHost: h\r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.header("x-folded")?.hasPrefix("a") == true)
        #expect(request.header("x-folded")?.hasSuffix("b") == true)
        #expect(request.header("host") == "h")
    }

    @Test func http2PrefaceRejected() {
        let stream = expectSameOutcomeAtEverySplit("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        #expect(stream.requests.isEmpty)
        let status = stream.error?.status
        #expect(status == 400 || status == 505)
    }

    @Test func unsupportedVersionRejected() {
        for version in ["2.0", "1.2", "0.9", "3.0"] {
            let stream = expectSameOutcomeAtEverySplit("GET / HTTP/\(version)\r\nHost: h\r\n\r\n")
            #expect(stream.requests.isEmpty, "HTTP/\(version)")
            #expect(stream.error?.status == 505, "HTTP/\(version)")
        }
    }

    @Test func unsupportedTransferCodingRejected() {
        let cases = [
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]
        for text in cases {
            let stream = expectSameOutcomeAtEverySplit(text)
            #expect(stream.requests.isEmpty, "\(text.debugDescription)")
            let status = stream.error?.status
            #expect(status == 501 || status == 400, "\(text.debugDescription)")
        }
    }

    @Test func urlLimitRejects414() {
        var limits = HTTPLimits()
        limits.maxURLBytes = 64
        let atLimit = "/" + String(repeating: "a", count: 63)
        let overLimit = "/" + String(repeating: "a", count: 64)

        let accepted = expectSameOutcomeAtEverySplit("GET \(atLimit) HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits)
        #expect(accepted.requests.first?.path == atLimit)

        let rejected = expectSameOutcomeAtEverySplit("GET \(overLimit) HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits)
        #expect(rejected.error == .urlTooLong(limit: 64))
        #expect(rejected.error?.status == 414)
    }

    @Test func defaultURLLimitRejectsLongTarget() {
        let target = "/" + String(repeating: "x", count: 9000)
        let stream = decode("GET \(target) HTTP/1.1\r\n\r\n")
        #expect(stream.error?.status == 414)
    }

    @Test func headerLimitRejects431() {
        var limits = HTTPLimits()
        limits.maxHeaderBytes = 100
        // The request line without target counts "GET" + 12 = 15 bytes, and each field
        // adds its name, its value and 4.
        let fitting = "GET / HTTP/1.1\r\nX-A: " + String(repeating: "v", count: 78) + "\r\n\r\n"
        let tooLarge = "GET / HTTP/1.1\r\nX-A: " + String(repeating: "v", count: 79) + "\r\n\r\n"

        let accepted = expectSameOutcomeAtEverySplit(fitting, limits: limits)
        #expect(accepted.requests.count == 1)

        let rejected = expectSameOutcomeAtEverySplit(tooLarge, limits: limits)
        #expect(rejected.error == .headersTooLarge(limit: 100))
        #expect(rejected.error?.status == 431)
    }

    @Test func manySmallHeadersRejected() {
        var text = "GET / HTTP/1.1\r\n"
        for index in 0..<2000 {
            text += "X-\(index): v\r\n"
        }
        let stream = decode(text + "\r\n")
        #expect(stream.error?.status == 431)
    }

    @Test func headerOverflowOfParserIs431() {
        // Whitespace before a value reaches no callback, so only http-parser's own
        // 80 KB header limit stops it.
        let text = "GET / HTTP/1.1\r\nX-A:" + String(repeating: " ", count: 90_000) + "v\r\n\r\n"
        let stream = decode(text)
        #expect(stream.error?.status == 431)
    }

    @Test func bodyLimitByContentLengthRejects413() {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 10
        // The declared length alone is enough: no body byte has to arrive.
        let rejected = expectSameOutcomeAtEverySplit(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", limits: limits)
        #expect(rejected.error == .bodyTooLarge(limit: 10))
        #expect(rejected.error?.status == 413)

        let accepted = expectSameOutcomeAtEverySplit(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", limits: limits)
        #expect(accepted.requests.first?.body.count == 10)
    }

    @Test func hugeContentLengthRejected() {
        let stream = decode("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n")
        #expect(stream.requests.isEmpty)
        let status = stream.error?.status
        #expect(status == 400 || status == 413)
    }

    @Test func chunkedBodyLimitRejects413() {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 10
        let rejected = expectSameOutcomeAtEverySplit(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n",
            limits: limits)
        #expect(rejected.requests.isEmpty)
        #expect(rejected.error == .bodyTooLarge(limit: 10))

        let accepted = expectSameOutcomeAtEverySplit(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n",
            limits: limits)
        #expect(accepted.requests.first.map { String(decoding: $0.body, as: UTF8.self) } == "abcdefghij")
    }

    @Test func failureIsSticky() {
        let decoder = RequestDecoder(limits: HTTPLimits())
        let bad = Array("BAD\u{1} / HTTP/1.1\r\n\r\n".utf8)
        let first = bad.withUnsafeBytes { decoder.decode($0) }
        guard case .failure(let error) = first.outcome else {
            Issue.record("expected a failure, got \(first.outcome)")
            return
        }

        let good = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        let second = good.withUnsafeBytes { decoder.decode($0) }
        guard case .failure(let repeated) = second.outcome else {
            Issue.record("expected the failure again, got \(second.outcome)")
            return
        }
        #expect(repeated == error)
        #expect(second.consumed == 0)
    }

    @Test func emptyInputNeedsMoreInput() {
        let decoder = RequestDecoder(limits: HTTPLimits())
        let result = decoder.decode(UnsafeRawBufferPointer(start: nil, count: 0))
        guard case .needsMoreInput = result.outcome else {
            Issue.record("expected needsMoreInput, got \(result.outcome)")
            return
        }
        #expect(result.consumed == 0)
        #expect(!decoder.isRequestStarted)
    }

    @Test func requestProgressFlags() {
        let decoder = RequestDecoder(limits: HTTPLimits())
        let head = Array("POST / HTTP/1.1\r\nContent-Length: 4\r\n".utf8)
        _ = head.withUnsafeBytes { decoder.decode($0) }
        #expect(decoder.isRequestStarted)
        #expect(!decoder.areHeadersComplete)

        let end = Array("\r\nab".utf8)
        _ = end.withUnsafeBytes { decoder.decode($0) }
        #expect(decoder.areHeadersComplete)

        let rest = Array("cd".utf8)
        let result = rest.withUnsafeBytes { decoder.decode($0) }
        guard case .request = result.outcome else {
            Issue.record("expected a request, got \(result.outcome)")
            return
        }
        #expect(!decoder.isRequestStarted)
        #expect(!decoder.areHeadersComplete)
    }

    @Test func upgradeRequestFlagged() {
        let decoder = RequestDecoder(limits: HTTPLimits())
        let bytes = Array("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".utf8)
        let result = bytes.withUnsafeBytes { decoder.decode($0) }
        guard case .request(let request) = result.outcome else {
            Issue.record("expected a request, got \(result.outcome)")
            return
        }
        #expect(request.path == "/ws")
        #expect(decoder.isUpgradeRequested)
    }

    @Test func connectUsesAuthorityForm() throws {
        let stream = decode("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        let request = try #require(stream.requests.first)
        #expect(request.method == .other("CONNECT"))
        #expect(request.target == "example.com:443")
        #expect(request.path == "example.com:443")
    }

    @Test func randomBytesNeverCrash() {
        var generator = SplitMix64(seed: 0x5eed)
        let alphabet = Array(
            "GET POST HTTP/1.1\r\n: chunked Content-Length Transfer-Encoding 0123456789abc/?#%\t ".utf8)
        for _ in 0..<2000 {
            let length = Int(generator.next() % 200)
            var bytes: [UInt8] = []
            for _ in 0..<length {
                let roll = generator.next()
                bytes.append(
                    roll % 4 == 0 ? UInt8(truncatingIfNeeded: roll >> 8) : alphabet[Int(roll >> 8) % alphabet.count])
            }
            let cut = length == 0 ? 0 : Int(generator.next() % UInt64(length))
            let stream = decode([Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(!stream.leftUnconsumedBytes)
        }
    }
}

/// A small deterministic generator, so that a failing random case reproduces.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}
