/// Parsing of message ids and cursors.
///
/// Ids come from one Redis counter and are stored as sorted-set scores, which
/// are doubles: ids above 2^53 could not be compared exactly, so they are
/// rejected instead of rounded.
public enum Cursor {
    public static let maxID: UInt64 = 1 << 53

    /// Parses a decimal id of at most `maxID`; nil for anything else
    /// (signs, spaces, fractions, exponents, overflow).
    public static func parse<S: StringProtocol>(_ text: S) -> UInt64? {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= 16 else { return nil }

        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value <= maxID ? value : nil
    }

    /// Reads the id from an encoded message, which always starts with `{"id":N,`
    /// because the publish script writes it that way.
    public static func messageID(inEncoded bytes: [UInt8]) -> UInt64? {
        let prefix: [UInt8] = Array(#"{"id":"#.utf8)
        guard bytes.count > prefix.count, bytes.starts(with: prefix) else { return nil }

        var value: UInt64 = 0
        var digits = 0
        for byte in bytes[prefix.count...] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
            value = value &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
            digits += 1
            if digits > 16 { return nil }
        }
        return digits > 0 ? value : nil
    }
}
