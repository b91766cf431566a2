/// The address and database of a Redis server, parsed from a URL.
///
/// Two forms are accepted: `redis://host[:port][/db]` and `unix:///absolute/path[?db=N]`.
/// The port defaults to 6379 and the database to 0, and an IPv6 host goes in brackets.
/// Passwords, user names and TLS (`rediss://`) are not supported, so a URL with any of
/// them is rejected instead of being silently used without them.
public struct RedisEndpoint: Equatable, CustomStringConvertible {
    public enum Address: Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var address: Address
    /// The database that the connection selects. Pub/sub ignores it, because Redis
    /// channels are shared by all databases.
    public var database: Int

    /// The longest Unix socket path that fits `sockaddr_un.sun_path` (108 bytes on
    /// Linux, including the terminating NUL). hiredis 0.14.1 truncates longer paths
    /// without an error, so they are rejected here.
    public static let maxUnixPathLength = 107

    public init(address: Address, database: Int = 0) {
        self.address = address
        self.database = database
    }

    /// Parses `redis://host[:port][/db]` or `unix:///absolute/path[?db=N]`.
    ///
    /// Throws `RedisEndpointError` naming the invalid part and the accepted forms.
    /// The message never repeats a user name or password found in `url`.
    public init(url: String) throws {
        var parser = EndpointParser(url: url)
        self = try parser.parse()
    }

    /// The endpoint as a URL in the form that `init(url:)` accepts, with the database
    /// only when it is not 0.
    public var description: String {
        switch address {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            let suffix = database == 0 ? "" : "/\(database)"
            return "redis://\(shownHost):\(port)\(suffix)"
        case .unix(let path):
            let suffix = database == 0 ? "" : "?db=\(database)"
            return "unix://\(path)\(suffix)"
        }
    }
}

/// The error for an invalid Redis URL, whose message names the invalid part and the
/// accepted forms.
public struct RedisEndpointError: Error, Equatable, CustomStringConvertible {
    public let message: String

    public var description: String { message }
}

/// A one-pass parser of the two URL forms, without Foundation.
private struct EndpointParser {
    static let acceptedForms = "Use redis://host[:port][/db] or unix:///absolute/path[?db=N]."
    static let defaultPort = 6379

    let url: String

    mutating func parse() throws -> RedisEndpoint {
        if url.isEmpty {
            throw failure("the URL is empty")
        }
        if url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) {
            throw failure("the URL contains whitespace or a control character")
        }
        guard let colon = url.firstIndex(of: ":") else {
            throw failure("the scheme is missing")
        }

        let scheme = url[..<colon].lowercased()
        let afterColon = url[url.index(after: colon)...]
        guard afterColon.hasPrefix("//") else {
            throw failure("\"//\" must follow \"\(scheme):\"")
        }
        let rest = afterColon.dropFirst(2)
        if rest.contains("#") {
            throw failure("a fragment (\"#...\") is not allowed")
        }

        switch scheme {
        case "redis":
            return try parseTCP(rest)
        case "unix":
            return try parseUnix(rest)
        case "rediss":
            throw failure("TLS (rediss://) is not supported")
        default:
            throw failure("the scheme \"\(scheme)\" is not supported")
        }
    }

    private func parseTCP(_ rest: Substring) throws -> RedisEndpoint {
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let remainder = rest[authorityEnd...]

        if authority.contains("@") {
            throw failure("a user name or password is not supported, so remove the part before \"@\"")
        }
        if remainder.contains("?") {
            throw failure("query parameters are not supported in redis:// URLs")
        }

        let (host, port) = try parseHostAndPort(authority)
        let database = try parseDatabasePath(remainder)
        return RedisEndpoint(address: .tcp(host: host, port: port), database: database)
    }

    private func parseHostAndPort(_ authority: Substring) throws -> (String, Int) {
        var host: Substring
        var portText: Substring?

        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw failure("the IPv6 address has no closing \"]\"")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let afterBracket = authority[authority.index(after: close)...]
            if !afterBracket.isEmpty {
                guard afterBracket.hasPrefix(":") else {
                    throw failure("unexpected text \"\(afterBracket)\" after the IPv6 address")
                }
                portText = afterBracket.dropFirst()
            }
            let isIPv6 = host.contains(":") && host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
            guard isIPv6 else {
                throw failure("\"\(host)\" is not an IPv6 address")
            }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count > 2 {
                throw failure("the host \"\(authority)\" has several \":\", so put an IPv6 address in brackets")
            }
            host = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
            let isHostName = host.allSatisfy { character in
                character.isASCII && (character.isLetter || character.isNumber || "-._".contains(character))
            }
            guard isHostName else {
                throw failure("the host \"\(host)\" may contain only letters, digits, \"-\", \".\" and \"_\"")
            }
        }

        if host.isEmpty {
            throw failure("the host is missing")
        }

        guard let portText else {
            return (String(host), Self.defaultPort)
        }
        guard let port = Self.decimal(portText, maxDigits: 5), (1...65535).contains(port) else {
            throw failure("the port \"\(portText)\" is not a number from 1 to 65535")
        }
        return (String(host), port)
    }

    /// Reads the database from "", "/" or "/N". A non-empty `path` starts with "/".
    private func parseDatabasePath(_ path: Substring) throws -> Int {
        if path.isEmpty || path == "/" {
            return 0
        }
        return try database(path.dropFirst())
    }

    private func parseUnix(_ rest: Substring) throws -> RedisEndpoint {
        guard rest.hasPrefix("/") else {
            throw failure("a unix:// URL has an empty host and an absolute path, as in unix:///run/redis.sock")
        }

        let queryStart = rest.firstIndex(of: "?") ?? rest.endIndex
        let encodedPath = rest[..<queryStart]
        guard let path = Self.percentDecoded(encodedPath) else {
            throw failure("the path \"\(encodedPath)\" contains an invalid percent escape")
        }
        if path == "/" {
            throw failure("the socket path is missing")
        }
        if path.utf8.contains(0) {
            throw failure("the socket path contains a NUL byte")
        }
        if path.utf8.count > RedisEndpoint.maxUnixPathLength {
            throw failure(
                "the socket path is \(path.utf8.count) bytes long, but at most \(RedisEndpoint.maxUnixPathLength) fit a Unix socket address"
            )
        }

        var database = 0
        if queryStart < rest.endIndex {
            let query = rest[rest.index(after: queryStart)...]
            for parameter in query.split(separator: "&", omittingEmptySubsequences: false) {
                guard parameter.hasPrefix("db=") else {
                    throw failure("the query parameter \"\(parameter)\" is not supported, only db=N is")
                }
                database = try self.database(parameter.dropFirst(3))
            }
        }
        return RedisEndpoint(address: .unix(path: path), database: database)
    }

    private func database(_ text: Substring) throws -> Int {
        guard let value = Self.decimal(text, maxDigits: 9) else {
            throw failure("the database \"\(text)\" is not a non-negative integer")
        }
        return value
    }

    /// Builds the error, with any user name or password in the URL replaced by "***".
    private func failure(_ problem: String) -> RedisEndpointError {
        RedisEndpointError(message: "invalid Redis URL \"\(Self.redacted(url))\": \(problem). \(Self.acceptedForms)")
    }

    /// Replaces everything between the scheme and the last "@" with "***", because that
    /// part of a URL usually contains credentials, which must never reach a log.
    static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        var start = url.startIndex
        if let colon = url.firstIndex(of: ":"), colon < at {
            start = url.index(after: colon)
            while start < at, url[start] == "/" {
                start = url.index(after: start)
            }
        }
        return String(url[..<start]) + "***" + String(url[at...])
    }

    /// Parses ASCII digits only, so "+1", " 1" and "1e3" are rejected.
    static func decimal(_ text: Substring, maxDigits: Int) -> Int? {
        guard !text.isEmpty, text.count <= maxDigits else { return nil }
        var value = 0
        for character in text.utf8 {
            guard character >= UInt8(ascii: "0"), character <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(character - UInt8(ascii: "0"))
        }
        return value
    }

    /// Decodes `%XX` escapes, or returns nil for a malformed escape or invalid UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
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
