import DwellCore
import DwellEventLoop
import DwellHTTP
import DwellRedis

/// Holding polls: arrival, backlog reads, wakeups, timeouts and release.
///
/// The order closes the lost-wakeup gap: a poll is registered in the channel
/// index and its subscriptions are confirmed before its backlog is read, so a
/// message published at any moment is found by the read, by pub/sub, or by both
/// (and then deduplicated by id).
extension Worker {
    func startPoll(_ request: HTTPRequest, on connection: HTTPConnection) throws(RequestError) {
        let parameters = try PollParameters(
            query: QueryString(request.query), lastEventIDHeader: request.header("last-event-id"))
        try authorize(parameters, userID: authenticatedUserID(request, parameters: parameters))
        guard !isDraining else {
            throw .unavailable("this worker is draining; poll again")
        }
        guard commands.isConnected, subscriber.isConnected else {
            throw .unavailable("Redis is unreachable; poll again shortly")
        }

        let poll = HeldPoll(connection: connection, parameters: parameters)
        connection.context = poll
        deadlines.schedule(poll, token: poll.timerToken, at: holdDeadline())
        if let userID = poll.userID {
            poll.state = .admitting
            admit(poll, userID: userID)
        } else {
            hold(poll)
        }
    }

    /// Registers a poll in the channel index and reads its backlog once its
    /// subscriptions are confirmed.
    func hold(_ poll: HeldPoll) {
        // A poll admitted after the drain began would otherwise wait for the drain timeout.
        guard !isDraining else {
            answerWithTimeout(poll, outcome: .drain)
            return
        }
        poll.state = .subscribing
        polls.insert(poll, channels: poll.channels)
        for channel in poll.channels {
            idleChannels.removeValue(forKey: channel)
            // User channels reach this worker through its own server channel.
            if !Self.isUserChannel(channel) {
                subscriber.subscribe(Array(RedisKeys.notifications(channel).utf8))
            }
        }

        if areSubscriptionsConfirmed(poll) {
            readBacklog(poll)
        }
        Log.debug("poll.held", ["channels": poll.channels.joined(separator: ","), "cursor": poll.cursor ?? 0])
    }

    /// A deadline up to `holdJitterFraction` before the hold timeout, never after it.
    private func holdDeadline() -> UInt64 {
        let hold = configuration.holdTimeoutMilliseconds
        let jitter = UInt64(Double(hold) * configuration.holdJitterFraction * Double.random(in: 0..<1))
        return loop.nowMilliseconds + hold - jitter
    }

    func areSubscriptionsConfirmed(_ poll: HeldPoll) -> Bool {
        poll.channels.allSatisfy { channel in
            let redisChannel =
                Self.isUserChannel(channel)
                ? RedisKeys.serverChannel(serverID) : RedisKeys.notifications(channel)
            return subscriber.isConfirmed(Array(redisChannel.utf8))
        }
    }

    static func isUserChannel(_ channel: String) -> Bool {
        channel.hasPrefix(RedisKeys.userChannelPrefix)
    }

    func readBacklog(_ poll: HeldPoll) {
        poll.state = .readingBacklog
        poll.readSequence &+= 1
        let sequence = poll.readSequence

        let arguments =
            [poll.cursor.map(String.init) ?? "", String(poll.limit), "+inf", poll.epoch ?? "", Self.epochCandidate()]
            + poll.channels
        commands.evaluate(
            StoreScripts.read, keys: bytes(StoreScripts.epochKeys), arguments: bytes(arguments)
        ) { [unowned self] result in
            guard !poll.isReleased, poll.readSequence == sequence, poll.state == .readingBacklog else { return }
            backlogArrived(poll, result: result)
        }
    }

    private func backlogArrived(_ poll: HeldPoll, result: Result<RedisValue, RedisCommandError>) {
        let page: BacklogPage
        switch result {
        case .success(let value):
            guard let parsed = BacklogPage(value) else {
                Log.error("poll.bad_backlog_reply", ["reply": value])
                answerWithError(poll, status: 500, message: "unexpected reply from Redis")
                return
            }
            page = parsed
        case .failure(.server(let message)):
            Log.error("poll.backlog_failed", ["error": message])
            answerWithError(poll, status: 503, message: "Redis rejected the backlog read; poll again")
            return
        case .failure(let error):
            // The reconnect handler reads the backlog again, so the poll stays held.
            Log.debug("poll.backlog_deferred", ["error": error])
            poll.state = .awaitingRedis
            return
        }

        epochObserved(page.epoch)
        if page.isReset {
            answerWithReset(poll, epoch: page.epoch)
            return
        }
        poll.epoch = page.epoch
        let cursor = poll.cursor ?? page.current
        poll.cursor = cursor
        let early = poll.earlyEpoch == page.epoch ? poll.early : []
        let (messages, hasMore) = MessageMerge.answer(
            backlog: page.messages, backlogHasMore: page.hasMore, early: early, after: cursor,
            limit: poll.limit)
        poll.early = []

        // Messages after the cursor were trimmed away: say so, and move the cursor
        // past the gap when nothing retained is left to answer with.
        let missed = RetentionGap.isMissed(cursor: cursor, firstRetainedID: page.firstRetainedID)
        guard let last = messages.last else {
            if missed {
                let next = RetentionGap.cursorPastGap(
                    cursor: cursor, firstRetainedID: page.firstRetainedID, current: page.current)
                let body = JSONText.pollAnswer(
                    messages: [], lastEventID: next, hasMore: false,
                    extraFields: Self.epochField(page.epoch) + #","missed":true"#)
                answer(poll, body: SharedBytes(body), outcome: .message)
                return
            }
            poll.state = .held
            return
        }
        let body = JSONText.pollAnswer(
            messages: messages.map(\.bytes), lastEventID: last.id, hasMore: hasMore || poll.earlyOverflowed,
            extraFields: Self.epochField(page.epoch) + (missed ? #","missed":true"# : ""))
        answer(poll, body: SharedBytes(body), outcome: .message)
    }

    static func epochField(_ epoch: String?) -> String {
        epoch.map { ",\"epoch\":\"\($0)\"" } ?? ""
    }

    /// A random epoch for Redis to adopt if it has none; 16 hex digits.
    static func epochCandidate() -> String {
        let value = UInt64.random(in: 0...UInt64.max)
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Tells the client that its cursor belongs to an epoch that no longer exists:
    /// it should poll again from 0 in the new epoch.
    func answerWithReset(_ poll: HeldPoll, epoch: String) {
        Log.info("poll.reset", ["client_epoch": poll.epoch ?? "", "epoch": epoch])
        let body = JSONText.pollAnswer(
            messages: [], lastEventID: 0, hasMore: false, extraFields: Self.epochField(epoch) + #","reset":true"#)
        answer(poll, body: SharedBytes(body), outcome: .message)
    }

    /// Wakes the polls on `channel` that a new message answers.
    ///
    /// Every poll answered here gets the same body bytes, encoded once.
    func deliver(_ message: EncodedMessage, on channel: String, epoch: String) {
        var body: SharedBytes?
        var answered: UInt64 = 0
        for poll in polls.elements(on: channel) {
            guard poll.state == .held else {
                poll.keepEarly(message, epoch: epoch)
                continue
            }
            if let pollEpoch = poll.epoch, pollEpoch != epoch {
                answerWithReset(poll, epoch: epoch)
                continue
            }
            if let cursor = poll.cursor, message.id <= cursor {
                continue
            }

            if body == nil {
                body = SharedBytes(
                    JSONText.pollAnswer(
                        messages: [message.bytes], lastEventID: message.id, hasMore: false,
                        extraFields: Self.epochField(epoch)))
            }
            answer(poll, body: body!, outcome: .message)
            counters.deliveries += 1
            answered += 1
        }
        if answered > 0, let stamp = Self.timestamp(of: message) {
            let now = Self.wallClockMilliseconds()
            deliveryLatency.observe(now > stamp ? now - stamp : 0, times: answered)
        }
    }

    /// The publish time that the store script writes as the last field, `"timestamp":N}`.
    static func timestamp(of message: EncodedMessage) -> UInt64? {
        let bytes = message.bytes
        guard bytes.last == UInt8(ascii: "}") else { return nil }
        var value: UInt64 = 0
        var scale: UInt64 = 1
        var index = bytes.count - 2
        while index >= 0, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9"), scale <= 1 << 50 {
            value += UInt64(bytes[index] - UInt8(ascii: "0")) * scale
            scale *= 10
            index -= 1
        }
        return scale > 1 && index >= 0 && bytes[index] == UInt8(ascii: ":") ? value : nil
    }

    func answer(_ poll: HeldPoll, body: SharedBytes, outcome: PollOutcome) {
        let connection = poll.connection
        release(poll, outcome: outcome)
        respond(to: connection, status: 200, body: body, isPoll: true)
    }

    func answerWithError(_ poll: HeldPoll, status: Int, message: String) {
        let connection = poll.connection
        release(poll, outcome: .error)
        respond(
            to: connection, status: status, json: JSONText.error(message),
            extraHeaders: status == 503 ? [("Retry-After", "1")] : [])
    }

    /// Answers a poll with no messages and its unchanged cursor; `reconnect`
    /// tells the client that this worker is going away.
    func answerWithTimeout(_ poll: HeldPoll, outcome: PollOutcome) {
        guard let cursor = poll.cursor else {
            if outcome == .drain {
                answerWithError(poll, status: 503, message: "this worker is draining; poll again")
                return
            }
            answerWithError(poll, status: 503, message: "Redis did not respond in time; poll again")
            return
        }
        let extra =
            Self.epochField(poll.epoch)
            + (outcome == .drain ? #","timeout":true,"reconnect":true"# : #","timeout":true"#)
        let body = JSONText.pollAnswer(messages: [], lastEventID: cursor, hasMore: false, extraFields: extra)
        answer(poll, body: SharedBytes(body), outcome: outcome)
    }

    /// Drops every trace of a poll: index entry, timer and connection context.
    func release(_ poll: HeldPoll, outcome: PollOutcome) {
        guard !poll.isReleased else { return }
        poll.isReleased = true
        poll.timerToken &+= 1

        let now = loop.nowMilliseconds
        for channel in polls.remove(poll, channels: poll.channels) where !Self.isUserChannel(channel) {
            idleChannels[channel] = now
        }
        poll.connection.context = nil
        counters.pollsAnswered[outcome, default: 0] += 1
        if poll.holdsUserSlot, let userID = poll.userID {
            poll.holdsUserSlot = false
            releaseUserSlot(userID)
        }
    }

    func expireDeadlines() {
        for entry in deadlines.expire(now: loop.nowMilliseconds) {
            let poll = entry.element
            guard !poll.isReleased, poll.timerToken == entry.token else { continue }
            answerWithTimeout(poll, outcome: .timeout)
        }
    }

    /// After a reconnect of the command connection, polls whose backlog read
    /// failed read it again.
    func commandsConnected() {
        for poll in polls.allElements where poll.state == .awaitingRedis {
            if areSubscriptionsConfirmed(poll) {
                readBacklog(poll)
            } else {
                poll.state = .subscribing
            }
        }
    }
}

/// The reply of the read script: the current counter, whether more messages
/// exist past the limit, the epoch, whether the cursor's epoch is gone, the
/// first id from which the logs are complete, and the messages.
struct BacklogPage {
    let current: UInt64
    let hasMore: Bool
    let epoch: String
    let isReset: Bool
    let firstRetainedID: UInt64
    let messages: [EncodedMessage]

    init?(_ value: RedisValue) {
        guard case .array(let items) = value, items.count >= 5,
            case .integer(let current) = items[0], current >= 0,
            case .integer(let more) = items[1], let epoch = items[2].string,
            case .integer(let reset) = items[3], case .integer(let firstRetained) = items[4]
        else { return nil }

        var messages: [EncodedMessage] = []
        messages.reserveCapacity(items.count - 5)
        for item in items.dropFirst(5) {
            guard case .bulk(let bytes) = item, let message = EncodedMessage(encoded: bytes) else { return nil }
            messages.append(message)
        }
        self.current = UInt64(current)
        self.hasMore = more != 0
        self.epoch = epoch
        self.isReset = reset != 0
        self.firstRetainedID = UInt64(max(0, firstRetained))
        self.messages = messages
    }
}
