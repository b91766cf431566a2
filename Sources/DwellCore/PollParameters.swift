/// The validated parameters of `GET /api/poll`.
public struct PollParameters: Equatable {
    public static let defaultLimit = 100
    public static let maxLimit = 1000
    public static let maxChannels = 64

    /// Distinct channel names, in the order the client gave them.
    public var channels: [String]
    /// The id of the last message the client has; nil means "only messages
    /// published from now on", and the answer carries the current cursor.
    public var cursor: UInt64?
    public var limit: Int
    public var userID: String?
    /// The epoch the cursor belongs to, as an earlier answer gave it; nil when the
    /// client sent none.
    public var epoch: String?

    public init(channels: [String], cursor: UInt64?, limit: Int, userID: String?, epoch: String? = nil) {
        self.channels = channels
        self.cursor = cursor
        self.limit = limit
        self.userID = userID
        self.epoch = epoch
    }

    /// Parses and validates a poll query.
    ///
    /// `channels` absent or `*` means every channel the caller may read, which
    /// for now is the channel of the `userId` the request names. The
    /// `lastEventId` parameter wins over the `Last-Event-ID` header that
    /// EventSource-style clients send.
    public init(query: QueryString, lastEventIDHeader: String?) throws(RequestError) {
        let userID = try Self.parseUserID(query.value("userId"))

        self.channels = try Self.parseChannels(query.value("channels"), userID: userID)
        self.cursor = try Self.parseCursor(query.value("lastEventId"), header: lastEventIDHeader)
        self.limit = try Self.parseLimit(query.value("limit"))
        self.userID = userID
        self.epoch = try Self.parseEpoch(query.value("epoch"))
    }

    static func parseEpoch(_ raw: String?) throws(RequestError) -> String? {
        guard let raw else { return nil }
        let isValid =
            !raw.isEmpty && raw.utf8.count <= 64
            && raw.utf8.allSatisfy { byte in
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            }
        guard isValid else {
            throw .badRequest("invalid epoch '\(raw)': pass the epoch of an earlier response unchanged")
        }
        return raw
    }

    static func parseUserID(_ raw: String?) throws(RequestError) -> String? {
        guard let raw else { return nil }
        guard Identifiers.isValidUserID(raw) else {
            throw .badRequest(
                "invalid userId '\(raw)': use 1 to 128 characters of A-Z a-z 0-9 _ - . @")
        }
        return raw
    }

    static func parseChannels(_ raw: String?, userID: String?) throws(RequestError) -> [String] {
        guard let raw, raw != "*" else {
            guard let userID else {
                throw .badRequest(
                    "missing channels: pass channels=a,b or a userId whose channel to read")
            }
            return [Identifiers.userChannel(userID)]
        }

        var channels: [String] = []
        for name in raw.split(separator: ",", omittingEmptySubsequences: false) {
            guard Identifiers.isValidChannel(name) else {
                throw .badRequest(
                    "invalid channel '\(name)': use 1 to 128 characters of A-Z a-z 0-9 _ - . : @")
            }
            let channel = String(name)
            if !channels.contains(channel) {
                channels.append(channel)
            }
        }
        guard channels.count <= maxChannels else {
            throw .badRequest("too many channels (\(channels.count)); at most \(maxChannels) per poll")
        }
        return channels
    }

    static func parseCursor(_ query: String?, header: String?) throws(RequestError) -> UInt64? {
        if let query {
            guard let cursor = Cursor.parse(query) else {
                throw .badRequest(
                    "invalid lastEventId '\(query)': use a whole number from 0 to \(Cursor.maxID)")
            }
            return cursor
        }
        if let header {
            let trimmed = header.trimmingASCIISpaces()
            guard let cursor = Cursor.parse(trimmed) else {
                throw .badRequest(
                    "invalid Last-Event-ID header '\(header)': use a whole number from 0 to \(Cursor.maxID)")
            }
            return cursor
        }
        return nil
    }

    static func parseLimit(_ raw: String?) throws(RequestError) -> Int {
        guard let raw else { return defaultLimit }
        guard let limit = Cursor.parse(raw), limit >= 1, limit <= UInt64(maxLimit) else {
            throw .badRequest("invalid limit '\(raw)': use a whole number from 1 to \(maxLimit)")
        }
        return Int(limit)
    }
}

/// The validated parameters of `GET /api/messages/range`: ids `from` through `to`.
public struct RangeParameters: Equatable {
    public var channels: [String]
    public var from: UInt64
    public var to: UInt64
    public var limit: Int

    public init(query: QueryString) throws(RequestError) {
        let userID = try PollParameters.parseUserID(query.value("userId"))
        channels = try PollParameters.parseChannels(query.value("channels"), userID: userID)
        limit = try PollParameters.parseLimit(query.value("limit"))

        guard let fromText = query.value("from") else {
            throw .badRequest("missing from: pass the first id of the range, as from=N")
        }
        guard let from = Cursor.parse(fromText), from >= 1 else {
            throw .badRequest("invalid from '\(fromText)': use a whole number from 1 to \(Cursor.maxID)")
        }
        self.from = from

        if let toText = query.value("to") {
            guard let to = Cursor.parse(toText), to >= from else {
                throw .badRequest(
                    "invalid to '\(toText)': use a whole number from \(from) (the from value) to \(Cursor.maxID)")
            }
            self.to = to
        } else {
            self.to = Cursor.maxID
        }
    }
}

extension StringProtocol {
    func trimmingASCIISpaces() -> Substring {
        var text = self[...]
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return Substring(text)
    }
}
