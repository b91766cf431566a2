/// Small JSON writers for the response shapes of the HTTP contract.
///
/// Messages arrive from Redis already encoded, so a poll answer is built by
/// splicing their bytes between fixed fragments instead of parsing them again.
public enum JSONText {
    /// A JSON string literal with the escapes RFC 8259 requires.
    public static func string(_ value: String) -> String {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `{"error":"..."}`, the body of every error response.
    public static func error(_ message: String) -> String {
        "{\"error\":\(string(message))}"
    }

    /// The body of a poll answer: `{"messages":[...],"lastEventId":N,"hasMore":B}`
    /// followed by `extraFields`, which must be `,"key":value` fragments.
    public static func pollAnswer(
        messages: [[UInt8]], lastEventID: UInt64, hasMore: Bool, extraFields: String = ""
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(messages.reduce(64) { $0 + $1.count + 1 } + extraFields.utf8.count)

        out.append(contentsOf: #"{"messages":["#.utf8)
        for (index, message) in messages.enumerated() {
            if index > 0 {
                out.append(UInt8(ascii: ","))
            }
            out.append(contentsOf: message)
        }
        out.append(contentsOf: #"],"lastEventId":"#.utf8)
        out.append(contentsOf: String(lastEventID).utf8)
        out.append(contentsOf: (hasMore ? #","hasMore":true"# : #","hasMore":false"#).utf8)
        out.append(contentsOf: extraFields.utf8)
        out.append(UInt8(ascii: "}"))
        return out
    }
}
