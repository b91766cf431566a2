import CJansson
import DwellCore

/// The validated body of `POST /api/messages`: a channel and its data, with the
/// data re-encoded as compact JSON ready to be stored.
struct PublishRequest {
    static let maxIdempotencyKeyLength = 128
    /// Decoding flags: reject duplicate keys (which value was meant is unknowable)
    /// and accept `\u0000` inside strings, which JSON allows.
    private static let decodeFlags = Int(JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
    /// Encoding flags: compact, any value at the top level, and 17 significant
    /// digits so that every double survives the round trip (jansson's
    /// JSON_REAL_PRECISION macro, which Swift does not import).
    private static let encodeFlags = Int(JSON_COMPACT | JSON_ENCODE_ANY | ((17 & 0x1F) << 11))

    let channel: String
    /// Compact JSON text of the `data` member.
    let data: String
    let idempotencyKey: String?

    /// Parses a publish body with jansson, which follows RFC 8259 strictly:
    /// trailing commas, unpaired surrogate escapes such as `"\ud800"` and
    /// trailing garbage are errors.
    init(body: [UInt8], idempotencyKey: String?, fixedChannel: String? = nil) throws(RequestError) {
        var error = json_error_t()
        let parsed = body.withUnsafeBytes { bytes in
            json_loadb(bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, Self.decodeFlags, &error)
        }
        guard let root = parsed else {
            let reason = withUnsafeBytes(of: error.text) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw .badRequest("invalid JSON body: \(reason) (line \(error.line), column \(error.column))")
        }
        defer { json_decref(root) }
        guard root.pointee.type == JSON_OBJECT else {
            throw .badRequest("invalid body: expected a JSON object with \"channel\" and \"data\"")
        }

        if let fixedChannel {
            channel = fixedChannel
        } else {
            guard let value = json_object_get(root, "channel") else {
                throw .badRequest("missing \"channel\": name the channel to publish to")
            }
            guard value.pointee.type == JSON_STRING, let name = Self.string(value), Identifiers.isValidChannel(name)
            else {
                throw .badRequest(
                    "invalid channel \(Self.describe(value)): use 1 to 128 characters of A-Z a-z 0-9 _ - . : @")
            }
            channel = name
        }

        guard let value = json_object_get(root, "data") else {
            throw .badRequest("missing \"data\": the message needs a data member (any JSON value)")
        }
        data = try Self.encode(value)
        self.idempotencyKey = try Self.validateIdempotencyKey(idempotencyKey)
    }

    private static func encode(_ value: UnsafeMutablePointer<json_t>) throws(RequestError) -> String {
        let size = json_dumpb(value, nil, 0, encodeFlags)
        guard size > 0 else {
            throw .badRequest("invalid \"data\": it cannot be encoded as JSON")
        }
        var buffer = [UInt8](repeating: 0, count: size)
        let written = buffer.withUnsafeMutableBytes { bytes in
            json_dumpb(value, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), size, encodeFlags)
        }
        return String(decoding: buffer.prefix(written), as: UTF8.self)
    }

    /// The UTF-8 text of a JSON string, or nil when it holds a NUL byte.
    private static func string(_ value: UnsafeMutablePointer<json_t>) -> String? {
        guard let text = json_string_value(value) else { return nil }
        let length = json_string_length(value)
        let bytes = UnsafeRawBufferPointer(start: text, count: length)
        guard !bytes.contains(0) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func validateIdempotencyKey(_ key: String?) throws(RequestError) -> String? {
        guard let key else { return nil }

        let isPrintable = key.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        guard !key.isEmpty, key.utf8.count <= maxIdempotencyKeyLength, isPrintable else {
            throw .badRequest(
                "invalid Idempotency-Key header: use 1 to \(maxIdempotencyKeyLength) visible ASCII characters")
        }
        return key
    }

    private static func describe(_ value: UnsafeMutablePointer<json_t>) -> String {
        if value.pointee.type == JSON_STRING, let text = string(value) {
            return JSONText.string(String(text.prefix(140)))
        }
        return "of JSON type \(value.pointee.type.rawValue == JSON_NULL.rawValue ? "null" : "other than string")"
    }
}
