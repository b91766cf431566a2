/// An encoded message with the id read from its first field.
public struct EncodedMessage: Equatable {
    public let id: UInt64
    public let bytes: [UInt8]

    public init(id: UInt64, bytes: [UInt8]) {
        self.id = id
        self.bytes = bytes
    }

    /// Wraps bytes from Redis; nil when they do not start with `{"id":N`.
    public init?(encoded bytes: [UInt8]) {
        guard let id = Cursor.messageID(inEncoded: bytes) else { return nil }
        self.init(id: id, bytes: bytes)
    }
}

/// Joins what a poll's backlog read and its pub/sub wakeups found.
public enum MessageMerge {
    /// Returns the messages after `cursor`, deduplicated by id, oldest first and at
    /// most `limit` of them, and whether more were left out.
    ///
    /// `backlogHasMore` says the backlog read itself stopped at its limit.
    public static func answer(
        backlog: [EncodedMessage], backlogHasMore: Bool, early: [EncodedMessage],
        after cursor: UInt64, limit: Int
    ) -> (messages: [EncodedMessage], hasMore: Bool) {
        var merged = backlog.filter { $0.id > cursor }
        if !early.isEmpty {
            var seen = Set(merged.map(\.id))
            for message in early where message.id > cursor && seen.insert(message.id).inserted {
                merged.append(message)
            }
            merged.sort { $0.id < $1.id }
        }

        guard merged.count > limit else { return (merged, backlogHasMore) }
        return (Array(merged.prefix(limit)), true)
    }
}
