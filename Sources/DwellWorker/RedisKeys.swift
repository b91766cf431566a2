/// The Redis key and channel names of one Dwell data set.
///
/// Every name starts with `dwell:` so that Dwell can share a Redis database
/// with other programs. Channel and user names need no escaping here because
/// their alphabet excludes spaces and control bytes.
enum RedisKeys {
    /// The counter that hands out message ids across all channels.
    static let messageCounter = "dwell:id"

    /// The sorted set of a channel's retained messages, scored by id.
    static func log(_ channel: String) -> String {
        "dwell:log:" + channel
    }

    /// The pub/sub channel that carries a channel's new messages to workers.
    static func notifications(_ channel: String) -> String {
        "dwell:ch:" + channel
    }

    static let notificationPrefix: [UInt8] = Array("dwell:ch:".utf8)

    /// The pub/sub channel a worker publishes its liveness probe on.
    static func probe(_ serverID: String) -> String {
        "dwell:probe:" + serverID
    }

    /// The message id stored for an `Idempotency-Key`.
    static func idempotency(_ key: String) -> String {
        "dwell:idem:" + key
    }
}
