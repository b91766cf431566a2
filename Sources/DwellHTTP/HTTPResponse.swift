/// A response for `HTTPConnection.respond(_:)`.
public struct HTTPResponse {
    public var status: Int
    /// Extra header fields. The server writes `Date`, `Content-Length` and
    /// `Connection` itself and drops fields of those names from this list.
    public var headers: [(String, String)]
    /// Sent for every request method except HEAD, and for every status except
    /// 1xx, 204 and 304, which have no body.
    public var body: SharedBytes
    /// Whether the connection closes after this response, which then carries
    /// `Connection: close`.
    public var closesConnection: Bool = false

    public init(status: Int, headers: [(String, String)] = [], body: SharedBytes) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Builds the `{"error": "<message>"}` response that the server sends for a
    /// request it rejects itself.
    static func error(status: Int, message: String) -> HTTPResponse {
        var json = "{\"error\":\""
        for scalar in message.unicodeScalars {
            switch scalar {
            case "\"": json += "\\\""
            case "\\": json += "\\\\"
            default:
                if scalar.value < 0x20 {
                    json += " "
                } else {
                    json.unicodeScalars.append(scalar)
                }
            }
        }
        json += "\"}"

        var response = HTTPResponse(
            status: status,
            headers: [("Content-Type", "application/json; charset=utf-8")],
            body: SharedBytes(json))
        response.closesConnection = true
        return response
    }
}
