import DwellCore
import DwellEventLoop
import DwellHTTP
import DwellRedis

/// Publishing and range reads: the requests that go to Redis and come back.
extension Worker {
    func publish(_ request: HTTPRequest, on connection: HTTPConnection) throws(RequestError) {
        let message = try PublishRequest(body: request.body, idempotencyKey: request.header("idempotency-key"))
        store(message, on: connection)
    }

    /// Stores a message in the user's own channel; every poll that reads that
    /// channel, on any worker, receives it.
    func publishToUser(_ pathSegment: Substring, _ request: HTTPRequest, on connection: HTTPConnection)
        throws(RequestError)
    {
        // The path segment may be percent-encoded like any other (`%75` for `u`).
        let userID = try QueryString.decode(pathSegment)
        guard Identifiers.isValidUserID(userID) else {
            throw .badRequest("invalid user id '\(userID)': use 1 to 128 characters of A-Z a-z 0-9 _ - . @")
        }
        let message = try PublishRequest(
            body: request.body, idempotencyKey: request.header("idempotency-key"),
            fixedChannel: Identifiers.userChannel(userID))
        store(message, on: connection)
    }

    private func store(_ message: PublishRequest, on connection: HTTPConnection) {
        guard commands.isConnected else {
            respond(
                to: connection, status: 503,
                json: #"{"error":"Redis is unreachable; nothing was stored, retry later","outcome":"not_stored"}"#,
                extraHeaders: [("Retry-After", "1")])
            return
        }

        let isUserChannel = Self.isUserChannel(message.channel)
        var keys = StoreScripts.epochKeys
        if isUserChannel {
            let userID = String(message.channel.dropFirst(RedisKeys.userChannelPrefix.count))
            keys += [RedisKeys.user(userID), RedisKeys.servers]
        }
        let arguments = [
            message.channel, message.data, String(configuration.retentionCount),
            String(configuration.retentionMilliseconds), message.idempotencyKey ?? "", Self.epochCandidate(),
            RedisKeys.notifications(message.channel),
        ]
        commands.evaluate(
            isUserChannel ? StoreScripts.publishToUser : StoreScripts.publish, keys: bytes(keys),
            arguments: bytes(arguments)
        ) { [unowned self] result in
            publishCompleted(result, channel: message.channel, on: connection)
        }
    }

    private func publishCompleted(
        _ result: Result<RedisValue, RedisCommandError>, channel: String, on connection: HTTPConnection
    ) {
        switch result {
        case .success(let value):
            guard let (id, isRepeat, epoch) = Self.publishReply(value) else {
                Log.error("publish.bad_reply", ["reply": value])
                respond(
                    to: connection, status: 500,
                    json: #"{"error":"unexpected reply from Redis; the message may be stored","outcome":"unknown"}"#)
                return
            }
            if !isRepeat {
                counters.messagesPublished += 1
            }
            epochObserved(epoch)
            let duplicate = isRepeat ? #","duplicate":true"# : ""
            Log.debug("message.published", ["channel": channel, "id": id])
            respond(
                to: connection, status: 200,
                json: "{\"success\":true,\"messageId\":\(id),\"epoch\":\"\(epoch)\"\(duplicate)}")
        case .failure(.notConnected):
            respond(
                to: connection, status: 503,
                json: #"{"error":"Redis is unreachable; nothing was stored, retry later","outcome":"not_stored"}"#,
                extraHeaders: [("Retry-After", "1")])
        case .failure(let error):
            // The script may have run before the connection broke: only an
            // Idempotency-Key makes a retry safe.
            Log.warning("publish.outcome_unknown", ["channel": channel, "error": error])
            let json =
                "{\"error\":\(JSONText.string("the connection to Redis failed after the publish was sent (\(error)); retry with the same Idempotency-Key"))"
                + ",\"outcome\":\"unknown\"}"
            respond(to: connection, status: 503, json: json, extraHeaders: [("Retry-After", "1")])
        }
    }

    /// The id and whether it belongs to an earlier publish with the same key.
    static func publishReply(_ value: RedisValue) -> (UInt64, Bool, String)? {
        guard case .array(let items) = value, items.count == 4,
            case .integer(let id) = items[0], id > 0, case .integer(let isRepeat) = items[1],
            let epoch = items[3].string
        else { return nil }
        return (UInt64(id), isRepeat != 0, epoch)
    }

    func readRange(_ request: HTTPRequest, on connection: HTTPConnection) throws(RequestError) {
        let range = try RangeParameters(query: QueryString(request.query))
        guard commands.isConnected else {
            throw .unavailable("Redis is unreachable; retry shortly")
        }

        let arguments =
            [String(range.from - 1), String(range.limit), String(range.to), "", Self.epochCandidate()] + range.channels
        commands.evaluate(StoreScripts.read, keys: bytes(StoreScripts.epochKeys), arguments: bytes(arguments)) {
            [unowned self] result in
            guard case .success(let value) = result, let page = BacklogPage(value) else {
                respond(
                    to: connection, error: RequestError.unavailable("Redis did not respond to the range read; retry"))
                return
            }
            // Ids from `from` up to the first retained one may have belonged to
            // these channels and are gone; retainedFrom tells the client where the
            // logs are complete again.
            let missed = RetentionGap.isMissed(cursor: range.from - 1, firstRetainedID: page.firstRetainedID)
            let last = page.messages.last?.id ?? (range.from - 1)
            let extra =
                Self.epochField(page.epoch) + ",\"retainedFrom\":\(page.firstRetainedID)"
                + (missed ? #","missed":true"# : "")
            let body = JSONText.pollAnswer(
                messages: page.messages.map(\.bytes), lastEventID: last, hasMore: page.hasMore, extraFields: extra)
            respond(to: connection, status: 200, body: SharedBytes(body))
        }
    }
}
