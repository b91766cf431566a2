import DwellCore
import DwellHTTP

/// The record of one poll from arrival until it is answered or abandoned.
///
/// Kept small on purpose: a worker holds tens of thousands of these, and the
/// target is at most 2 KB of user-space memory per held poll, connection included.
final class HeldPoll {
    enum State {
        /// Waiting for Redis to count the user's polls against the per-user maximum.
        case admitting
        /// Waiting for Redis to confirm the subscriptions of its channels.
        case subscribing
        /// The backlog read after the cursor is in flight.
        case readingBacklog
        /// Redis was unreachable; the backlog is read when it comes back.
        case awaitingRedis
        /// Backlog empty: the next message on one of its channels answers it.
        case held
    }

    let connection: HTTPConnection
    let channels: [String]
    let limit: Int
    let userID: String?
    /// Nil until the first read tells the current cursor, for a poll sent without one.
    var cursor: UInt64?
    var state: State = .subscribing
    /// Messages that pub/sub delivered before the backlog read answered.
    var early: [EncodedMessage] = []
    /// The epoch of the messages in `early`.
    var earlyEpoch: String?
    /// The epoch of the cursor: the client's, or the one the first read found.
    var epoch: String?
    var earlyOverflowed = false
    /// Matches the token of the poll's live timer entry; bumped to cancel it.
    var timerToken: UInt32 = 0
    /// Identifies the latest backlog read, so the reply of an earlier one is ignored.
    var readSequence: UInt16 = 0
    var isReleased = false
    /// True once Redis counted this poll in its user's mapping, which the
    /// release must undo.
    var holdsUserSlot = false

    init(connection: HTTPConnection, parameters: PollParameters) {
        self.connection = connection
        self.channels = parameters.channels
        self.limit = parameters.limit
        self.userID = parameters.userID
        self.cursor = parameters.cursor
        self.epoch = parameters.epoch
    }

    /// Keeps a pub/sub message that arrived while the backlog was being read.
    func keepEarly(_ message: EncodedMessage, epoch: String) {
        if earlyEpoch != epoch {
            // Only messages of the newest epoch can matter to the answer.
            early = []
            earlyOverflowed = false
            earlyEpoch = epoch
        }
        if let cursor, message.id <= cursor { return }
        guard early.count < limit else {
            // The backlog holds what is dropped here; hasMore sends the client back for it.
            earlyOverflowed = true
            return
        }
        early.append(message)
    }
}

/// The reason a poll left the worker, for logs and metrics.
enum PollOutcome: String, CaseIterable {
    case message
    case timeout
    case disconnect
    case drain
    case error
}
