import DwellCore
import DwellEventLoop
import DwellRedis

/// The pub/sub side: confirmations, notifications, lingering subscriptions and
/// the end-to-end probe of the subscriber connection.
extension Worker {
    func subscriptionConfirmed(_ redisChannel: [UInt8]) {
        guard let channel = Self.channelName(fromNotification: redisChannel) else {
            // The server channel carries every user channel, so each poll waiting
            // on a subscription checks again.
            if redisChannel == Array(RedisKeys.serverChannel(serverID).utf8) {
                for poll in polls.allElements where poll.state == .subscribing && areSubscriptionsConfirmed(poll) {
                    readBacklog(poll)
                }
            }
            return
        }

        for poll in polls.elements(on: channel) where poll.state == .subscribing {
            if areSubscriptionsConfirmed(poll) {
                readBacklog(poll)
            }
        }
    }

    func notificationReceived(channel redisChannel: [UInt8], payload: [UInt8]) {
        guard let channel = Self.channelName(fromNotification: redisChannel) else {
            if redisChannel == Array(RedisKeys.serverChannel(serverID).utf8) {
                serverMessageReceived(payload)
            }
            return
        }
        guard let newline = payload.firstIndex(of: UInt8(ascii: "\n")),
            let message = EncodedMessage(encoded: Array(payload[(newline + 1)...]))
        else {
            Log.warning("pubsub.bad_payload", ["channel": channel, "bytes": payload.count])
            return
        }
        deliver(message, on: channel, epoch: String(decoding: payload[..<newline], as: UTF8.self))
    }

    /// Pub/sub drops what is published while its connection is down, so every
    /// poll waits for its subscriptions again and then rereads its backlog.
    func subscriberDisconnected() {
        probe.reset()
        for poll in polls.allElements {
            poll.state = .subscribing
            poll.readSequence &+= 1
        }
    }

    func releaseIdleSubscriptions(now: UInt64) {
        let linger = configuration.subscriptionLingerMilliseconds
        let expired = idleChannels.filter { now - $0.value >= linger }.map(\.key)
        for channel in expired where !polls.contains(channel: channel) {
            idleChannels.removeValue(forKey: channel)
            subscriber.unsubscribe(Array(RedisKeys.notifications(channel).utf8))
        }
    }

    /// Publishes a probe through the command connection and, a deadline later,
    /// drops the subscriber if the probe did not come back on it: a half-open
    /// connection or a stalled proxy would otherwise hold polls forever.
    func checkProbe(now: UInt64) {
        if let sentAt = probe.sentAt {
            guard now - sentAt >= configuration.probeDeadlineMilliseconds else { return }
            Log.warning("pubsub.probe_timeout", ["deadline_ms": configuration.probeDeadlineMilliseconds])
            probe.reset()
            subscriber.dropConnection(reason: "probe not received in time")
            return
        }

        let probeChannel = Array(RedisKeys.serverChannel(serverID).utf8)
        guard now - probe.lastSentAt >= configuration.probeIntervalMilliseconds,
            commands.isConnected, subscriber.isConnected, subscriber.isConfirmed(probeChannel)
        else { return }

        probe.sentAt = now
        probe.lastSentAt = now
        commands.send([Array("PUBLISH".utf8), probeChannel, Array("probe".utf8)]) { [unowned self] result in
            // No receiver means Redis lost this subscription (for example after a
            // restart the subscriber did not notice), so waiting is pointless.
            if case .success(.integer(0)) = result, probe.sentAt != nil {
                Log.warning("pubsub.probe_unrouted", [:])
                probe.reset()
                subscriber.dropConnection(reason: "probe had no receiver")
            } else if case .failure = result {
                probe.sentAt = nil
            }
        }
    }

    /// A probe, or a message for a user whose polls this server holds, sent as
    /// "<epoch>\n<channel>\n<message>".
    private func serverMessageReceived(_ payload: [UInt8]) {
        let parts = payload.split(separator: UInt8(ascii: "\n"), maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            probeReceived()
            return
        }
        let channel = String(decoding: parts[1], as: UTF8.self)
        guard let message = EncodedMessage(encoded: Array(parts[2])) else {
            Log.warning("pubsub.bad_payload", ["channel": channel, "bytes": payload.count])
            return
        }
        deliver(message, on: channel, epoch: String(decoding: parts[0], as: UTF8.self))
    }

    private func probeReceived() {
        probe.sentAt = nil
        if !probe.isHealthy {
            probe.isHealthy = true
            Log.info("pubsub.healthy", [:])
        }
    }

    static func channelName(fromNotification redisChannel: [UInt8]) -> String? {
        let prefix = RedisKeys.notificationPrefix
        guard redisChannel.count > prefix.count, redisChannel.starts(with: prefix) else { return nil }
        return String(decoding: redisChannel[prefix.count...], as: UTF8.self)
    }
}
