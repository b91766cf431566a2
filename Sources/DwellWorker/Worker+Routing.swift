import DwellCore
import DwellEventLoop
import DwellHTTP
import Glibc

extension Worker: HTTPServerDelegate {
    public func server(_ server: HTTPServer, received request: HTTPRequest, on connection: HTTPConnection) {
        do {
            try route(request, on: connection)
        } catch {
            respond(to: connection, error: error)
        }
    }

    public func server(_ server: HTTPServer, abandoned connection: HTTPConnection) {
        guard let poll = connection.context as? HeldPoll else { return }
        release(poll, outcome: .disconnect)
    }

    private func route(_ request: HTTPRequest, on connection: HTTPConnection) throws(RequestError) {
        switch request.path {
        case "/api/poll":
            try requireMethod(request, allowed: [.get], allowHeader: "GET")
            try startPoll(request, on: connection)
        case "/api/messages":
            try requireMethod(request, allowed: [.post], allowHeader: "POST")
            try publish(request, on: connection)
        case "/api/messages/range":
            try requireMethod(request, allowed: [.get, .head], allowHeader: "GET, HEAD")
            try readRange(request, on: connection)
        case "/api/stats":
            try requireMethod(request, allowed: [.get, .head], allowHeader: "GET, HEAD")
            try respondWithStats(request, on: connection)
        case "/metrics":
            try requireMethod(request, allowed: [.get, .head], allowHeader: "GET, HEAD")
            respondWithMetrics(on: connection)
        case "/api/poll/health":
            try requireMethod(request, allowed: [.get, .head], allowHeader: "GET, HEAD")
            respondWithHealth(on: connection)
        default:
            if let userID = Self.userMessagesTarget(request.path) {
                try requireMethod(request, allowed: [.post], allowHeader: "POST")
                try publishToUser(userID, request, on: connection)
                return
            }
            throw .notFound("no route for \(request.path); see the API table in the README")
        }
    }

    private func requireMethod(
        _ request: HTTPRequest, allowed: [HTTPMethod], allowHeader: String
    ) throws(RequestError) {
        guard allowed.contains(request.method) else {
            throw .methodNotAllowed(allowed: allowHeader)
        }
    }

    /// The user id of `/api/users/<id>/messages`, or nil for any other path.
    static func userMessagesTarget(_ path: String) -> Substring? {
        let prefix = "/api/users/"
        let suffix = "/messages"
        guard path.hasPrefix(prefix), path.hasSuffix(suffix),
            path.utf8.count > prefix.utf8.count + suffix.utf8.count
        else { return nil }

        let start = path.index(path.startIndex, offsetBy: prefix.count)
        let end = path.index(path.endIndex, offsetBy: -suffix.count)
        return path[start..<end]
    }
}

extension Worker {
    static let jsonHeaders: [(String, String)] = [("Content-Type", "application/json; charset=utf-8")]
    static let pollHeaders: [(String, String)] = [
        ("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store"),
    ]

    func respond(to connection: HTTPConnection, status: Int, json: String, extraHeaders: [(String, String)] = []) {
        respond(to: connection, status: status, body: SharedBytes(json), extraHeaders: extraHeaders)
    }

    func respond(
        to connection: HTTPConnection, status: Int, body: SharedBytes, extraHeaders: [(String, String)] = [],
        isPoll: Bool = false
    ) {
        var response = HTTPResponse(
            status: status, headers: (isPoll ? Self.pollHeaders : Self.jsonHeaders) + extraHeaders, body: body)
        response.closesConnection = isDraining
        connection.respond(response)
    }

    func respond(to connection: HTTPConnection, error: Error) {
        guard let error = error as? RequestError else {
            Log.error("http.unexpected_error", ["error": error])
            respond(to: connection, status: 500, json: JSONText.error("internal error"))
            return
        }

        var headers: [(String, String)] = []
        switch error {
        case .methodNotAllowed(let allowed):
            headers.append(("Allow", allowed))
        case .tooManyRequests(_, let seconds):
            headers.append(("Retry-After", String(seconds)))
        case .unavailable:
            headers.append(("Retry-After", "1"))
        default:
            break
        }
        Log.debug("http.rejected", ["status": error.status, "error": error.message])
        respond(to: connection, status: error.status, json: JSONText.error(error.message), extraHeaders: headers)
    }

    func respondWithHealth(on connection: HTTPConnection) {
        let isRedisUp = commands.isConnected && subscriber.isConnected
        // Degraded: connected, but the subscription that carries this worker's
        // probe is not confirmed, so wakeups may be missing until it is.
        let isSubscribed = subscriber.isConfirmed(Array(RedisKeys.serverChannel(serverID).utf8))
        let status = isDraining ? "draining" : (isRedisUp ? (isSubscribed ? "ok" : "degraded") : "unavailable")
        let json =
            "{\"status\":\"\(status)\",\"pid\":\(getpid()),\"slot\":\(configuration.slot)"
            + ",\"serverId\":\(JSONText.string(serverID)),\"heldPolls\":\(polls.count)"
            + ",\"connections\":\(server?.connectionCount ?? 0)"
            + ",\"redis\":\"\(commands.isConnected ? "connected" : "disconnected")\""
            + ",\"subscriber\":\"\(subscriber.isConnected ? "connected" : "disconnected")\""
            + ",\"subscribedChannels\":\(subscriber.subscribedCount)}"
        respond(to: connection, status: isRedisUp ? 200 : 503, json: json)
    }
}
