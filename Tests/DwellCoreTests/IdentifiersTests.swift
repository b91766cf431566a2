import DwellCore
import Testing

@Suite("Identifiers")
struct IdentifiersTests {
    @Test(
        "valid channel names",
        arguments: ["a", "room:1", "user@example.com", "A-Z_0.9", String(repeating: "x", count: 128)])
    func validChannels(name: String) {
        #expect(Identifiers.isValidChannel(name))
    }

    @Test(
        "invalid channel names",
        arguments: ["", " ", "a b", "a/b", "é", "a\u{0}", String(repeating: "x", count: 129), "a,b", "*"])
    func invalidChannels(name: String) {
        #expect(!Identifiers.isValidChannel(name))
    }

    @Test("user ids exclude the colon")
    func userIDsExcludeColon() {
        #expect(Identifiers.isValidUserID("alice"))
        #expect(!Identifiers.isValidUserID("a:b"))
    }
}

@Suite("Cursor")
struct CursorTests {
    @Test("parses plain decimals only")
    func parse() {
        #expect(Cursor.parse("0") == 0)
        #expect(Cursor.parse("9007199254740992") == Cursor.maxID)
        #expect(Cursor.parse("9007199254740993") == nil)
        #expect(Cursor.parse("+1") == nil)
        #expect(Cursor.parse(" 1") == nil)
        #expect(Cursor.parse("") == nil)
        #expect(Cursor.parse("1e3") == nil)
    }

    @Test("reads the id of an encoded message")
    func messageID() {
        #expect(Cursor.messageID(inEncoded: Array(#"{"id":123,"channel":"a"}"#.utf8)) == 123)
        #expect(Cursor.messageID(inEncoded: Array(#"{"channel":"a"}"#.utf8)) == nil)
        #expect(Cursor.messageID(inEncoded: Array(#"{"id":,"#.utf8)) == nil)
    }
}

@Suite("Query string")
struct QueryStringTests {
    @Test("decodes plus and percent escapes")
    func decoding() throws {
        let query = try QueryString("a=x+y&b=%41%62&c&d=")
        #expect(query.value("a") == "x y")
        #expect(query.value("b") == "Ab")
        #expect(query.value("c") == "")
        #expect(query.value("d") == "")
        #expect(query.value("e") == nil)
    }

    @Test("first value wins")
    func firstValueWins() throws {
        #expect(try QueryString("a=1&a=2").value("a") == "1")
    }

    @Test("truncated escape rejected")
    func truncatedEscape() {
        #expect(throws: RequestError.self) { try QueryString("a=%4") }
    }
}
