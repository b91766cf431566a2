/// The Redis key and channel names of one Dwell data set.
///
/// Every name starts with `dwell:` so that Dwell can share a Redis database
/// with other programs. Channel and user names need no escaping here because
/// their alphabet excludes spaces and control bytes.
enum RedisKeys {
    /// The counter that hands out message ids across all channels.
    static let messageCounter = "dwell:id"

    /// The random id of the data set, which changes when Redis loses the counter.
    static let epoch = "dwell:epoch"

    /// The pub/sub channel that carries a channel's new messages to workers.
    static func notifications(_ channel: String) -> String {
        "dwell:ch:" + channel
    }

    static let notificationPrefix: [UInt8] = Array("dwell:ch:".utf8)

    /// A server's own pub/sub channel: its liveness probe and the messages for
    /// the users whose polls it holds.
    static func serverChannel(_ serverID: String) -> String {
        "dwell:server:" + serverID
    }

    /// The hash that registers a live server; it expires unless refreshed.
    static func server(_ serverID: String) -> String {
        "dwell:server:" + serverID
    }

    /// The sorted set of servers scored by the time (ms) they count as dead.
    static let servers = "dwell:servers"

    /// The set of users that have a mapping to a server.
    static func serverUsers(_ serverID: String) -> String {
        "dwell:server-users:" + serverID
    }

    /// The hash mapping a user to the servers holding their polls, with counts.
    static func user(_ userID: String) -> String {
        "dwell:user:" + userID
    }

    /// The set of users with at least one mapping, for paging through them.
    static let users = "dwell:users"

    /// The prefix of user channels, whose messages go to servers by mapping.
    static let userChannelPrefix = "user:"

}
