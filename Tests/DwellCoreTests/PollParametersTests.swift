import DwellCore
import Testing

@Suite("Poll parameters")
struct PollParametersTests {
    private func parse(_ query: String, header: String? = nil) throws -> PollParameters {
        try PollParameters(query: QueryString(query), lastEventIDHeader: header)
    }

    @Test("channels, cursor and limit parsed")
    func fullQuery() throws {
        let parameters = try parse("channels=news,sport&lastEventId=42&limit=10")
        #expect(parameters.channels == ["news", "sport"])
        #expect(parameters.cursor == 42)
        #expect(parameters.limit == 10)
        #expect(parameters.userID == nil)
    }

    @Test("defaults without cursor or limit")
    func defaults() throws {
        let parameters = try parse("channels=a")
        #expect(parameters.cursor == nil)
        #expect(parameters.limit == PollParameters.defaultLimit)
    }

    @Test("duplicate channels collapse")
    func duplicateChannels() throws {
        #expect(try parse("channels=a,b,a").channels == ["a", "b"])
    }

    @Test("percent-encoded channel list")
    func percentEncoded() throws {
        #expect(try parse("channels=room%3A1%2Croom%3A2").channels == ["room:1", "room:2"])
    }

    @Test("wildcard means the user's channel")
    func wildcardUsesUserChannel() throws {
        #expect(try parse("channels=*&userId=alice").channels == ["user:alice"])
        #expect(try parse("userId=bob").channels == ["user:bob"])
    }

    @Test("missing channels without user rejected")
    func missingChannels() {
        #expect(throws: RequestError.self) { try parse("lastEventId=1") }
    }

    @Test(
        "invalid values rejected with 400",
        arguments: [
            "channels=", "channels=a,,b", "channels=a%20b", "channels=\(String(repeating: "x", count: 129))",
            "channels=a&lastEventId=-1", "channels=a&lastEventId=1.5", "channels=a&lastEventId=abc",
            "channels=a&lastEventId=99999999999999999999", "channels=a&limit=0", "channels=a&limit=1001",
            "channels=a&limit=x", "channels=a&userId=a:b", "channels=%zz", "channels=%C3%28",
        ])
    func invalidValues(query: String) {
        do {
            _ = try parse(query)
            Issue.record("accepted \(query)")
        } catch let error as RequestError {
            #expect(error.status == 400)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("query cursor wins over header")
    func queryCursorWins() throws {
        #expect(try parse("channels=a&lastEventId=5", header: "9").cursor == 5)
        #expect(try parse("channels=a", header: " 9 ").cursor == 9)
    }

    @Test("epoch parsed and validated")
    func epoch() throws {
        #expect(try parse("channels=a&epoch=0af3b2").epoch == "0af3b2")
        #expect(try parse("channels=a").epoch == nil)
        #expect(throws: RequestError.self) { try parse("channels=a&epoch=") }
        #expect(throws: RequestError.self) { try parse("channels=a&epoch=a:b") }
        #expect(throws: RequestError.self) { try parse("channels=a&epoch=\(String(repeating: "f", count: 65))") }
    }

    @Test("invalid Last-Event-ID header rejected")
    func invalidHeader() {
        #expect(throws: RequestError.self) { try parse("channels=a", header: "x") }
    }

    @Test("too many channels rejected")
    func tooManyChannels() {
        let list = (0...PollParameters.maxChannels).map { "c\($0)" }.joined(separator: ",")
        #expect(throws: RequestError.self) { try parse("channels=\(list)") }
    }
}

@Suite("Range parameters")
struct RangeParametersTests {
    @Test("from and to parsed")
    func fromTo() throws {
        let range = try RangeParameters(query: QueryString("channels=a&from=3&to=7"))
        #expect(range.from == 3)
        #expect(range.to == 7)
    }

    @Test("to below from rejected")
    func inverted() {
        #expect(throws: RequestError.self) { try RangeParameters(query: QueryString("channels=a&from=7&to=3")) }
    }

    @Test("missing from rejected")
    func missingFrom() {
        #expect(throws: RequestError.self) { try RangeParameters(query: QueryString("channels=a")) }
    }
}
