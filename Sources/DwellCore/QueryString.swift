/// The decoded pairs of a URL query string (`a=1&b=x%20y`), in order.
///
/// Decoding follows the `application/x-www-form-urlencoded` rules that browsers
/// use for query strings: `+` is a space and `%XX` is a byte. Invalid escapes
/// and byte sequences that are not UTF-8 make the whole query invalid, so a
/// garbled parameter is reported instead of silently changed.
public struct QueryString {
    public private(set) var pairs: [(name: String, value: String)] = []

    public init(_ raw: Substring) throws(RequestError) {
        guard !raw.isEmpty else { return }

        for component in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = component.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try Self.decode(parts[0])
            let value = parts.count > 1 ? try Self.decode(parts[1]) : ""
            pairs.append((name, value))
        }
    }

    public init(_ raw: String) throws(RequestError) {
        try self.init(raw[...])
    }

    /// The first value of `name`, or nil when the parameter is absent.
    public func value(_ name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    /// Decodes one percent-encoded component.
    public static func decode(_ component: Substring) throws(RequestError) -> String {
        guard component.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") })
        else { return String(component) }

        var bytes: [UInt8] = []
        bytes.reserveCapacity(component.utf8.count)
        var iterator = component.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue),
                    let low = iterator.next().flatMap(hexValue)
                else {
                    throw RequestError.badRequest("invalid percent-encoding in query parameter '\(component)'")
                }
                bytes.append(high << 4 | low)
            default:
                bytes.append(byte)
            }
        }

        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw RequestError.badRequest("query parameter '\(component)' is not valid UTF-8")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
