import DwellCore
import Foundation

/// The validated body of `POST /api/messages`: a channel and its data, with the
/// data re-encoded as compact JSON ready to be stored.
struct PublishRequest {
    static let maxIdempotencyKeyLength = 128

    let channel: String
    /// Compact JSON text of the `data` member.
    let data: String
    let idempotencyKey: String?

    /// Parses a publish body with Foundation's JSON parser, which rejects
    /// trailing garbage and unpaired surrogate escapes such as `"\ud800"`.
    init(body: [UInt8], idempotencyKey: String?, fixedChannel: String? = nil) throws(RequestError) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw .badRequest("invalid JSON body: \(Self.reason(error))")
        }
        guard let members = object as? [String: Any] else {
            throw .badRequest("invalid body: expected a JSON object with \"channel\" and \"data\"")
        }

        if let fixedChannel {
            channel = fixedChannel
        } else {
            guard let value = members["channel"] else {
                throw .badRequest("missing \"channel\": name the channel to publish to")
            }
            guard let name = value as? String, Identifiers.isValidChannel(name) else {
                throw .badRequest(
                    "invalid channel \(Self.describe(value)): use 1 to 128 characters of A-Z a-z 0-9 _ - . : @")
            }
            channel = name
        }

        guard let value = members["data"] else {
            throw .badRequest("missing \"data\": the message needs a data member (any JSON value)")
        }
        data = try Self.encode(value)
        self.idempotencyKey = try Self.validateIdempotencyKey(idempotencyKey)
    }

    private static func encode(_ value: Any) throws(RequestError) -> String {
        do {
            let bytes = try JSONSerialization.data(
                withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes])
            return String(decoding: bytes, as: UTF8.self)
        } catch {
            throw .badRequest("invalid \"data\": \(reason(error))")
        }
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

    private static func describe(_ value: Any) -> String {
        if let text = value as? String {
            return JSONText.string(String(text.prefix(140)))
        }
        return "of type \(type(of: value))"
    }

    private static func reason(_ error: Error) -> String {
        let nsError = error as NSError
        return nsError.userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
    }
}
