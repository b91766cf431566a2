import Foundation

/// A client of Dwell's HTTP API: publish messages and hold polls.
///
/// It keeps one keep-alive connection and reconnects when the server closes it.
/// Not thread-safe: use one client per thread.
public final class DwellClient {
    public struct PollResult {
        /// Each message as a JSON object (`id`, `channel`, `data`, `timestamp`).
        public var messages: [[String: Any]]
        public var lastEventID: UInt64
        public var hasMore: Bool
        public var isTimeout: Bool
        public var reconnect: Bool
        /// The data set's epoch; send it with the next poll.
        public var epoch: String?
        /// The cursor's epoch is gone (Redis lost its data): poll again from 0.
        public var isReset: Bool
        /// Messages after the cursor were trimmed by retention before delivery.
        public var missed: Bool
    }

    public let host: String
    public let port: Int
    public var timeoutSeconds: Double
    private var connection: HTTPClientConnection?

    /// Accepts `http://host:port` with an optional trailing slash.
    public init(url: String, timeoutSeconds: Double = 60) throws(ClientError) {
        guard url.hasPrefix("http://") else {
            throw ClientError("invalid URL '\(url)': use http://host:port")
        }
        var rest = url.dropFirst("http://".count)
        if rest.hasSuffix("/") {
            rest = rest.dropLast()
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) else {
            throw ClientError("invalid URL '\(url)': use http://host:port")
        }
        self.host = String(parts[0])
        self.port = port
        self.timeoutSeconds = timeoutSeconds
    }

    /// Sends a request, reconnecting once when a kept-alive connection was closed.
    public func request(
        _ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil
    ) throws(ClientError) -> ClientResponse {
        let isReused = connection != nil
        do throws(ClientError) {
            return try send(method, target, headers: headers, body: body)
        } catch {
            connection = nil
            guard isReused, method != "POST" else { throw error }
            return try send(method, target, headers: headers, body: body)
        }
    }

    private func send(
        _ method: String, _ target: String, headers: [(String, String)], body: [UInt8]?
    ) throws(ClientError) -> ClientResponse {
        let live: HTTPClientConnection
        if let connection {
            live = connection
        } else {
            live = try HTTPClientConnection(host: host, port: port, timeoutSeconds: timeoutSeconds)
            connection = live
        }
        let response = try live.request(method, target, headers: headers, body: body)
        if response.header("connection")?.lowercased() == "close" {
            connection = nil
        }
        return response
    }

    /// Publishes `dataJSON` (any JSON text) to `channel`; returns the message id.
    public func publish(channel: String, dataJSON: String, idempotencyKey: String? = nil) throws(ClientError)
        -> UInt64
    {
        try publishWithEpoch(channel: channel, dataJSON: dataJSON, idempotencyKey: idempotencyKey).id
    }

    /// Publishes like `publish` and returns the message id with the epoch it belongs to.
    public func publishWithEpoch(channel: String, dataJSON: String, idempotencyKey: String? = nil)
        throws(ClientError) -> (id: UInt64, epoch: String)
    {
        let body = "{\"channel\":\(Self.quote(channel)),\"data\":\(dataJSON)}"
        var headers = [("Content-Type", "application/json")]
        if let idempotencyKey {
            headers.append(("Idempotency-Key", idempotencyKey))
        }
        let response = try request("POST", "/api/messages", headers: headers, body: Array(body.utf8))
        let object = try Self.object(response)
        guard response.status == 200, let id = (object["messageId"] as? NSNumber)?.uint64Value else {
            throw ClientError(
                "publish failed with status \(response.status): \(response.bodyText)", status: response.status)
        }
        return (id, object["epoch"] as? String ?? "")
    }

    /// Holds one poll until messages arrive or the server's hold timeout passes.
    public func poll(channels: [String], cursor: UInt64?, limit: Int? = nil, epoch: String? = nil)
        throws(ClientError) -> PollResult
    {
        var target = "/api/poll?channels=" + channels.map(Self.encodeQueryValue).joined(separator: ",")
        if let cursor {
            target += "&lastEventId=\(cursor)"
        }
        if let epoch {
            target += "&epoch=\(epoch)"
        }
        if let limit {
            target += "&limit=\(limit)"
        }
        let response = try request("GET", target)
        let object = try Self.object(response)
        guard response.status == 200, let messages = object["messages"] as? [[String: Any]],
            let last = (object["lastEventId"] as? NSNumber)?.uint64Value
        else {
            throw ClientError(
                "poll failed with status \(response.status): \(response.bodyText)", status: response.status)
        }
        return PollResult(
            messages: messages, lastEventID: last, hasMore: object["hasMore"] as? Bool ?? false,
            isTimeout: object["timeout"] as? Bool ?? false, reconnect: object["reconnect"] as? Bool ?? false,
            epoch: object["epoch"] as? String, isReset: object["reset"] as? Bool ?? false,
            missed: object["missed"] as? Bool ?? false)
    }

    /// Percent-encodes everything but unreserved characters, so a channel name
    /// with a space or comma reaches the server as the caller wrote it.
    static func encodeQueryValue(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:@")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    static func object(_ response: ClientResponse) throws(ClientError) -> [String: Any] {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(response.body)),
            let object = parsed as? [String: Any]
        else {
            throw ClientError(
                "status \(response.status) with a body that is not a JSON object: \(response.bodyText)",
                status: response.status)
        }
        return object
    }

    static func quote(_ text: String) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed])) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
