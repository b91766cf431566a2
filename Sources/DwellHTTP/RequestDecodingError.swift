/// The reason the decoder rejected a request. The server sends `status` with
/// `message` in a JSON error body and closes the connection.
enum RequestDecodingError: Error, Equatable {
    /// http-parser rejected the bytes, or a field name or target byte is invalid.
    case malformed(String)
    case urlTooLong(limit: Int)
    case headersTooLarge(limit: Int)
    case bodyTooLarge(limit: Int)
    case versionNotSupported(major: Int, minor: Int)
    /// A `Transfer-Encoding` other than a lone `chunked`, with the field value.
    case transferCodingNotImplemented(String)
    /// An `Expect` other than `100-continue`, with the field value.
    case expectationFailed(String)

    var status: Int {
        switch self {
        case .malformed: 400
        case .urlTooLong: 414
        case .headersTooLarge: 431
        case .bodyTooLarge: 413
        case .versionNotSupported: 505
        case .transferCodingNotImplemented: 501
        case .expectationFailed: 417
        }
    }

    var message: String {
        switch self {
        case .malformed(let description):
            "invalid HTTP request: \(description)"
        case .urlTooLong(let limit):
            "request target is longer than \(limit) bytes"
        case .headersTooLarge(let limit):
            "request header section is larger than \(limit) bytes"
        case .bodyTooLarge(let limit):
            "request body is larger than \(limit) bytes"
        case .versionNotSupported(let major, let minor):
            "HTTP/\(major).\(minor) is not supported, use HTTP/1.1 or HTTP/1.0"
        case .transferCodingNotImplemented(let value):
            "Transfer-Encoding \(Self.excerpt(value)) is not supported, only chunked is"
        case .expectationFailed(let value):
            "Expect \(Self.excerpt(value)) is not supported, only 100-continue is"
        }
    }

    /// Quotes a client's field value, cut to 64 characters so an error body stays small.
    private static func excerpt(_ value: String) -> String {
        let limit = 64
        guard value.count > limit else { return "\"\(value)\"" }
        return "\"\(value.prefix(limit))...\""
    }
}
