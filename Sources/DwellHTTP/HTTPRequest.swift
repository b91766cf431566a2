/// A request method, with a case of its own for each method that Dwell routes on.
public enum HTTPMethod: Equatable {
    case get, head, post, put, delete, options
    /// Any other method http-parser accepts, spelled as on the wire (`PATCH`, `CONNECT`).
    case other(String)

    /// The method as sent on the request line.
    public var name: String {
        switch self {
        case .get: "GET"
        case .head: "HEAD"
        case .post: "POST"
        case .put: "PUT"
        case .delete: "DELETE"
        case .options: "OPTIONS"
        case .other(let name): name
        }
    }
}

/// One complete request, with its body read and decoded.
public struct HTTPRequest {
    public var method: HTTPMethod
    /// The request target as sent, in origin-form (`/api/poll?x=1`), absolute-form
    /// (`http://host/api/poll?x=1`), authority-form (`CONNECT`) or `*`.
    public var target: String
    /// The target's path, still percent-encoded. It is `/` for an absolute-form target
    /// without a path.
    public var path: String
    /// The target's query without the `?`, still percent-encoded, or "" when absent.
    public var query: String
    public var versionMajor: Int
    public var versionMinor: Int
    /// Header fields in the order received, names lowercased, values without
    /// surrounding whitespace. Trailer fields of a chunked body are not included.
    public var headers: [(name: String, value: String)]
    /// The body, with any chunked transfer coding removed.
    public var body: [UInt8]
    /// Whether the client asked to keep the connection open after the response:
    /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
    public var keepAlive: Bool

    public init(
        method: HTTPMethod,
        target: String,
        path: String,
        query: String = "",
        versionMajor: Int = 1,
        versionMinor: Int = 1,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        keepAlive: Bool = true
    ) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }

    /// Returns the first value of a header field, or nil when the request has none.
    /// - Parameter lowercasedName: the field name in lowercase, such as `"content-type"`.
    public func header(_ lowercasedName: String) -> String? {
        for field in headers where field.name == lowercasedName {
            return field.value
        }
        return nil
    }
}
