import CLibUV
import Glibc

/// A failed system or libuv call, with the call's name and its error number.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let call: String
    /// A positive errno value.
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// Builds an error from a libuv status, which is a negated errno on Unix.
    public init(call: String, uvStatus: Int32) {
        self.init(call: call, errno: -uvStatus)
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
