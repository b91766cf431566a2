/// Validation of the names that appear in URLs, Redis keys and JSON without escaping.
///
/// A channel name is 1 to 128 characters of `A-Z a-z 0-9 _ - . : @`; a user id
/// is the same without `:`. Because every allowed byte is plain ASCII that JSON
/// and Redis take as is, a valid name can be written into a response or a key
/// without escaping.
public enum Identifiers {
    public static let maxLength = 128

    public static func isValidChannel<S: StringProtocol>(_ name: S) -> Bool {
        isValid(name, allowsColon: true)
    }

    public static func isValidUserID<S: StringProtocol>(_ name: S) -> Bool {
        isValid(name, allowsColon: false)
    }

    /// The channel that carries messages addressed to one user.
    public static func userChannel(_ userID: String) -> String {
        "user:" + userID
    }

    private static func isValid<S: StringProtocol>(_ name: S, allowsColon: Bool) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }

        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"),
                UInt8(ascii: "."), UInt8(ascii: "@"):
                return true
            case UInt8(ascii: ":"):
                return allowsColon
            default:
                return false
            }
        }
    }
}
