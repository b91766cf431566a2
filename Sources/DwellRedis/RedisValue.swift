import CHiredis

/// A reply from Redis in the RESP2 protocol that hiredis 0.14.1 speaks.
///
/// A top-level error reply reaches callers as `RedisCommandError.server`, so `.error`
/// appears only inside arrays, such as the results of `EXEC`.
public indirect enum RedisValue: Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisValue])

    /// The bytes of a bulk string or the UTF-8 bytes of a status, or nil for other
    /// replies.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): bytes
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    /// A status or a bulk string that is valid UTF-8, or nil for other replies.
    public var string: String? {
        switch self {
        case .bulk(let bytes): String(validating: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    /// The value of an integer reply. A bulk string of digits is not converted.
    public var integer: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    public var array: [RedisValue]? {
        if case .array(let elements) = self { elements } else { nil }
    }

    public var isNull: Bool {
        self == .null
    }
}

extension RedisValue {
    /// Copies a hiredis reply tree, which hiredis frees after the callback returns.
    init(reply: UnsafePointer<redisReply>) {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STRING:
            self = .bulk(Self.bytes(node.str, node.len))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(node.elements)
            for index in 0..<node.elements {
                // hiredis fills every element of an array it hands out.
                if let element = node.element[index] {
                    elements.append(RedisValue(reply: element))
                } else {
                    elements.append(.null)
                }
            }
            self = .array(elements)
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(node.integer))
        case REDIS_REPLY_NIL:
            self = .null
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: Self.bytes(node.str, node.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: Self.bytes(node.str, node.len), as: UTF8.self))
        default:
            self = .error("unknown hiredis reply type \(node.type)")
        }
    }

    /// Copies `length` bytes from a reply string. hiredis 0.14.1 sets `str` for string,
    /// status and error replies.
    static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }
}
