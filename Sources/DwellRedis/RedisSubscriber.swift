import CHiredis
import DwellEventLoop

/// The pub/sub side of Redis: a dedicated connection in subscribed mode that keeps a
/// desired set of channels subscribed across reconnects.
///
/// Each channel has at most one `SUBSCRIBE` or `UNSUBSCRIBE` on the wire. When its reply
/// arrives, the subscriber compares the channel's state in Redis with the desired set
/// and sends the next command if they differ. hiredis 0.14.1 needs this care, because it
/// leaves subscribed mode when an `UNSUBSCRIBE` reply reports zero channels, and then a
/// failed assertion aborts the process on any later pub/sub reply. A second
/// `UNSUBSCRIBE` of the same channel in flight would produce such a reply.
///
/// Messages are delivered only for channels in the desired set, so `unsubscribe` stops
/// delivery at once.
///
/// The subscriber sends no `PING`, because hiredis 0.14.1 in subscribed mode never runs
/// a `PING` callback. It takes the `pong` array for a pattern reply and hands it to the
/// previous reply's callback or drops it. The owner checks liveness instead: it
/// publishes a probe and calls `dropConnection` when the probe does not arrive.
///
/// Call everything on the loop thread, and call `stop()` before releasing the object.
/// As with `RedisConnection`, the process must ignore SIGPIPE.
public final class RedisSubscriber {
    /// Called for each message on a channel in the desired set.
    public var onMessage: ((_ channel: [UInt8], _ payload: [UInt8]) -> Void)?
    /// Called when Redis confirms a `SUBSCRIBE` of a channel that is still desired.
    public var onSubscribed: ((_ channel: [UInt8]) -> Void)?
    /// Called after each connect, once `SUBSCRIBE` has been sent for every desired
    /// channel. `onSubscribed` follows for each channel as Redis confirms it.
    public var onConnected: (() -> Void)?
    /// Called with the reason when the connection is lost, after the reconnect is
    /// scheduled. Not called for the close that `stop()` causes.
    public var onDisconnected: ((String) -> Void)?

    public let endpoint: RedisEndpoint

    private let link: RedisLink
    private var channels: [[UInt8]: Channel] = [:]
    private var desiredCount = 0
    private var confirmedChannelCount = 0

    /// Channels sent in one `SUBSCRIBE` after a reconnect, so that no single command
    /// grows without bound.
    private static let channelsPerCommand = 512

    private struct Channel {
        var isDesired: Bool
        var state: ChannelState
    }

    /// A channel's state in Redis on the current connection.
    private enum ChannelState {
        case unsubscribed
        case subscribing
        case subscribed
        case unsubscribing
    }

    public init(
        loop: EventLoop, endpoint: RedisEndpoint, reconnectBaseMilliseconds: UInt64 = 100,
        reconnectMaxMilliseconds: UInt64 = 5_000, connectTimeoutMilliseconds: UInt64 = 5_000
    ) {
        self.endpoint = endpoint
        link = RedisLink(
            loop: loop, endpoint: endpoint, name: "subscriber",
            backoff: RedisBackoff(
                baseMilliseconds: reconnectBaseMilliseconds, maxMilliseconds: reconnectMaxMilliseconds),
            connectTimeoutMilliseconds: connectTimeoutMilliseconds,
            watchdogIntervalMilliseconds: RedisLink.watchdogInterval(forTimeout: connectTimeoutMilliseconds))
        link.delegate = self
    }

    deinit {
        link.delegate = nil
        link.stop()
    }

    public var isConnected: Bool { link.isOpen }

    /// Connections made after the first one.
    public var reconnectCount: Int { link.reconnectCount }

    /// Connect attempts started after a failed connect or a lost connection.
    public var reconnectAttemptCount: Int { link.reconnectAttemptCount }

    /// The reason for the last failed connect or lost connection, or nil before the
    /// first failure. A later successful connect keeps it, for health reports.
    public var lastFailureReason: String? { link.lastFailureReason }

    /// Channels in the desired set.
    public var subscribedCount: Int { desiredCount }

    /// Desired channels whose `SUBSCRIBE` Redis confirmed on the current connection.
    public var confirmedCount: Int { confirmedChannelCount }

    /// Starts the first connect attempt now. Later calls, and calls after `stop()`, do
    /// nothing.
    public func start() {
        link.start()
    }

    /// Disconnects for good. The desired set is kept but no longer subscribed.
    public func stop() {
        link.stop()
    }

    /// Adds `channel` to the desired set and sends `SUBSCRIBE` when connected.
    ///
    /// Does nothing for a channel that is already desired, and then `isConfirmed`
    /// returns whether Redis confirmed it.
    public func subscribe(_ channel: [UInt8]) {
        var entry = channels[channel] ?? Channel(isDesired: false, state: .unsubscribed)
        guard !entry.isDesired else { return }

        entry.isDesired = true
        desiredCount += 1
        if entry.state == .subscribed {
            confirmedChannelCount += 1
        }
        channels[channel] = entry
        reconcile(channel)
    }

    /// Removes `channel` from the desired set and sends `UNSUBSCRIBE` when connected.
    /// No message for it is delivered after this call.
    public func unsubscribe(_ channel: [UInt8]) {
        guard var entry = channels[channel], entry.isDesired else { return }

        entry.isDesired = false
        desiredCount -= 1
        if entry.state == .subscribed {
            confirmedChannelCount -= 1
        }
        channels[channel] = entry
        reconcile(channel)
    }

    /// Returns whether `channel` is desired and Redis confirmed its subscription on the
    /// current connection.
    public func isConfirmed(_ channel: [UInt8]) -> Bool {
        guard let entry = channels[channel] else { return false }
        return entry.isDesired && entry.state == .subscribed
    }

    /// Drops the connection and reconnects after the backoff delay. The owner calls it
    /// when its liveness probe does not come back.
    public func dropConnection(reason: String) {
        link.drop(reason: reason)
    }
}

extension RedisSubscriber {
    /// Sends the one command that moves `channel` toward its desired state, if none is
    /// on the wire.
    private func reconcile(_ channel: [UInt8]) {
        guard var entry = channels[channel] else { return }

        switch (entry.isDesired, entry.state) {
        case (true, .unsubscribed):
            guard link.isOpen else { return }
            if send("SUBSCRIBE", [channel]) {
                entry.state = .subscribing
            }
        case (false, .subscribed):
            if send("UNSUBSCRIBE", [channel]) {
                entry.state = .unsubscribing
            }
        case (false, .unsubscribed):
            channels[channel] = nil
            return
        case (true, .subscribed), (_, .subscribing), (_, .unsubscribing):
            return
        }
        channels[channel] = entry
    }

    /// Sends a pub/sub command. Every reply to it reaches `link(_:received:token:)`
    /// through the callback that hiredis stores per channel.
    private func send(_ command: String, _ arguments: [[UInt8]]) -> Bool {
        link.append([Array(command.utf8)] + arguments, token: 0)
    }

    private func subscriptionConfirmed(_ channel: [UInt8]) {
        guard var entry = channels[channel], entry.state == .subscribing else { return }

        entry.state = .subscribed
        channels[channel] = entry
        if entry.isDesired {
            confirmedChannelCount += 1
            onSubscribed?(channel)
        } else {
            reconcile(channel)
        }
    }

    private func unsubscriptionConfirmed(_ channel: [UInt8]) {
        guard var entry = channels[channel], entry.state == .unsubscribing else { return }

        entry.state = .unsubscribed
        channels[channel] = entry
        reconcile(channel)
    }

    /// Forgets what Redis had subscribed on a connection that is gone.
    private func resetChannelStates() {
        var desiredChannels: [[UInt8]: Channel] = [:]
        desiredChannels.reserveCapacity(desiredCount)
        for (channel, entry) in channels where entry.isDesired {
            desiredChannels[channel] = Channel(isDesired: true, state: .unsubscribed)
        }
        channels = desiredChannels
        confirmedChannelCount = 0
    }

    private func subscribeAllDesired() {
        let desired = channels.keys.filter { channels[$0]?.isDesired == true }
        var start = 0
        while start < desired.count {
            let batch = Array(desired[start..<min(start + Self.channelsPerCommand, desired.count)])
            start += batch.count
            guard send("SUBSCRIBE", batch) else { return }
            for channel in batch {
                channels[channel]?.state = .subscribing
            }
        }
    }
}

extension RedisSubscriber: RedisLinkDelegate {
    func linkOpened(_ link: RedisLink) {
        link.connectionSucceeded()
        resetChannelStates()
        subscribeAllDesired()
        onConnected?()
    }

    func linkClosed(_ link: RedisLink, reason: String) {
        resetChannelStates()
        if !link.isStopRequested {
            onDisconnected?(reason)
        }
    }

    /// Dispatches a pub/sub reply on its first element. Redis 7 sends these in RESP2:
    /// `["message", channel, payload]`, `["subscribe", channel, count]` and
    /// `["unsubscribe", channel, count]`. Anything else is ignored, including the nil
    /// replies that hiredis delivers for each channel when the context goes away.
    func link(_ link: RedisLink, received reply: UnsafeMutablePointer<redisReply>?, token: UInt) {
        guard let reply, reply.pointee.type == REDIS_REPLY_ARRAY, reply.pointee.elements >= 3,
            let kindReply = reply.pointee.element[0], let channelReply = reply.pointee.element[1],
            kindReply.pointee.type == REDIS_REPLY_STRING, channelReply.pointee.type == REDIS_REPLY_STRING
        else { return }

        let channel = RedisValue.bytes(channelReply.pointee.str, channelReply.pointee.len)
        switch PubSubReplyKind(kindReply.pointee) {
        case .message:
            guard let payloadReply = reply.pointee.element[2], payloadReply.pointee.type == REDIS_REPLY_STRING,
                channels[channel]?.isDesired == true
            else { return }
            onMessage?(channel, RedisValue.bytes(payloadReply.pointee.str, payloadReply.pointee.len))
        case .subscribe:
            subscriptionConfirmed(channel)
        case .unsubscribe:
            unsubscriptionConfirmed(channel)
        case nil:
            Log.debug("redis.unexpected_reply", ["name": link.name])
        }
    }

    var linkNeedsWatchdog: Bool { false }

    func linkWatchdogFired(_ link: RedisLink, now: UInt64) {}
}

/// The first element of a pub/sub reply, compared as bytes so that the message path
/// allocates nothing for it.
private enum PubSubReplyKind {
    case message
    case subscribe
    case unsubscribe

    init?(_ reply: redisReply) {
        guard let text = reply.str else { return nil }
        let bytes = UnsafeRawBufferPointer(start: text, count: reply.len)
        if bytes.elementsEqual("message".utf8) {
            self = .message
        } else if bytes.elementsEqual("subscribe".utf8) {
            self = .subscribe
        } else if bytes.elementsEqual("unsubscribe".utf8) {
            self = .unsubscribe
        } else {
            return nil
        }
    }
}
