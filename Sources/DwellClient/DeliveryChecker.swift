import Foundation

/// Publishers and subscribers run against a live cluster to check Dwell's
/// delivery promise: every acknowledged message reaches every subscriber of its
/// channel, in id order, at least once.
///
/// Publishers retry each message with one `Idempotency-Key` until it is
/// acknowledged, so a retry after an unknown outcome stores nothing twice.
/// Subscribers poll like real clients: at once after an answer, with a capped
/// backoff after an error, carrying the cursor and epoch they were given.
public final class DeliveryChecker: @unchecked Sendable {
    public struct Options {
        public var urls: [String]
        public var publishers = 2
        public var subscribers = 4
        public var channels = 4
        public var durationSeconds = 60.0
        /// How long subscribers may take to catch up after publishing stops.
        public var drainSeconds = 30.0
        /// Pause between two publishes of one publisher.
        public var publishIntervalSeconds = 0.01

        public init(urls: [String]) {
            self.urls = urls
        }
    }

    /// One subscriber's counts, against the messages acknowledged on its channels.
    public struct SubscriberReport {
        public let name: String
        public let acknowledged: Int
        public let received: Int
        public let missing: Int
        public let duplicates: Int
        public let outOfOrder: Int
        public let resets: Int
        public let missedFlags: Int
        /// Acknowledged messages not received, in an epoch that a `reset` answer
        /// ended for the subscriber: Redis lost them, and the client was notified.
        public let lostToReset: Int
    }

    /// A message's identity: ids restart in each epoch, so the id alone is ambiguous.
    struct MessageKey: Hashable {
        let epoch: String
        let id: UInt64
    }

    private let options: Options
    private let runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    private let lock = NSLock()
    private var acknowledgements: [MessageKey] = []
    private var publishFailures = 0
    private var isPublishing = true
    private var isSubscribing = true

    public init(options: Options) {
        self.options = options
    }

    var channelNames: [String] {
        (0..<options.channels).map { "check-\(runID)-\($0)" }
    }

    /// Runs the publishers for the duration and the subscribers until they caught
    /// up or the drain time passed; returns one report per subscriber.
    public func run() -> (reports: [SubscriberReport], acknowledged: Int, publishRetries: Int) {
        let subscribers = (0..<options.subscribers).map { SubscriberState(name: "s\($0)") }
        var threads: [Thread] = []
        let finished = DispatchGroup()

        // Subscriber threads are not joined: each may sit in a held poll for the
        // server's hold timeout, and their counts are read under a lock instead.
        for subscriber in subscribers {
            threads.append(Thread { [self] in follow(subscriber) })
        }
        for index in 0..<options.publishers {
            finished.enter()
            threads.append(
                Thread { [self] in
                    publishLoop(index)
                    finished.leave()
                })
        }
        threads.forEach { $0.start() }

        Thread.sleep(forTimeInterval: options.durationSeconds)
        lock.withLock { isPublishing = false }

        // Subscribers stop once each has every acknowledged id, or at the deadline.
        let deadline = Date().addingTimeInterval(options.drainSeconds)
        while Date() < deadline {
            let expected = lock.withLock { Set(acknowledgements) }
            if subscribers.allSatisfy({ $0.hasReceived(all: expected) }) { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        lock.withLock { isSubscribing = false }
        finished.wait()

        let acknowledged = lock.withLock { acknowledgements }
        let expected = Set(acknowledged)
        let reports = subscribers.map { $0.report(expected: expected) }
        return (reports, acknowledged.count, lock.withLock { publishFailures })
    }

    private var shouldPublish: Bool { lock.withLock { isPublishing } }
    private var shouldSubscribe: Bool { lock.withLock { isSubscribing } }

    private func publishLoop(_ index: Int) {
        var sequence = 0
        var client: DwellClient?
        while shouldPublish {
            let channel = channelNames[(index + sequence) % channelNames.count]
            let key = "\(runID)-p\(index)-\(sequence)"
            let data = "{\"publisher\":\(index),\"sequence\":\(sequence)}"

            // Retry until acknowledged; a message never acknowledged is not expected.
            var attempt = 0
            while true {
                do {
                    let url = options.urls[(index + attempt) % options.urls.count]
                    let live = try client ?? DwellClient(url: url, timeoutSeconds: 10)
                    client = live
                    let (id, epoch) = try live.publishWithEpoch(channel: channel, dataJSON: data, idempotencyKey: key)
                    lock.withLock { acknowledgements.append(MessageKey(epoch: epoch, id: id)) }
                    break
                } catch {
                    client = nil
                    attempt += 1
                    lock.withLock { publishFailures += 1 }
                    if !shouldPublish && attempt > 50 { break }
                    Thread.sleep(forTimeInterval: min(0.05 * Double(attempt), 1))
                }
            }
            sequence += 1
            Thread.sleep(forTimeInterval: options.publishIntervalSeconds)
        }
    }

    private func follow(_ subscriber: SubscriberState) {
        var client: DwellClient?
        var cursor: UInt64?
        var epoch: String?
        var backoff = 0.05
        var turn = 0
        // The first poll sets the starting cursor before any publish is acknowledged.
        cursor = 0
        while shouldSubscribe {
            turn += 1
            do {
                let url = options.urls[turn % options.urls.count]
                let live = try client ?? DwellClient(url: url, timeoutSeconds: 40)
                client = live
                let result = try live.poll(channels: channelNames, cursor: cursor, epoch: epoch)
                subscriber.record(result)
                cursor = result.lastEventID
                epoch = result.epoch
                backoff = 0.05
                // Spread polls over the servers, as a load balancer would.
                if options.urls.count > 1 {
                    client = nil
                }
            } catch {
                client = nil
                subscriber.recordError()
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, 1)
            }
        }
    }
}

/// One subscriber's received messages; touched by its own thread and read at the end.
final class SubscriberState: @unchecked Sendable {
    typealias MessageKey = DeliveryChecker.MessageKey

    let name: String
    private let lock = NSLock()
    private var seen = Set<MessageKey>()
    /// The highest id received in each epoch, for order checks within the epoch.
    private var highest: [String: UInt64] = [:]
    /// Epochs that a `reset` answer ended for this subscriber.
    private var abandonedEpochs = Set<String>()
    private var currentEpoch: String?
    private var received = 0
    private var duplicates = 0
    private var outOfOrder = 0
    private var resets = 0
    private var missedFlags = 0
    private var errors = 0

    init(name: String) {
        self.name = name
    }

    func record(_ result: DwellClient.PollResult) {
        lock.withLock {
            if result.isReset {
                resets += 1
                if let currentEpoch {
                    abandonedEpochs.insert(currentEpoch)
                }
            }
            if result.missed {
                missedFlags += 1
            }
            let epoch = result.epoch ?? ""
            currentEpoch = epoch
            for message in result.messages {
                guard let id = (message["id"] as? NSNumber)?.uint64Value else { continue }
                received += 1
                guard seen.insert(MessageKey(epoch: epoch, id: id)).inserted else {
                    duplicates += 1
                    continue
                }
                if id < highest[epoch, default: 0] {
                    outOfOrder += 1
                }
                highest[epoch] = max(highest[epoch, default: 0], id)
            }
        }
    }

    func recordError() {
        lock.withLock { errors += 1 }
    }

    /// Whether every expected message was received or belongs to an abandoned epoch.
    func hasReceived(all expected: Set<MessageKey>) -> Bool {
        lock.withLock {
            expected.allSatisfy { seen.contains($0) || abandonedEpochs.contains($0.epoch) }
        }
    }

    func report(expected: Set<MessageKey>) -> DeliveryChecker.SubscriberReport {
        lock.withLock {
            let unreceived = expected.subtracting(seen)
            let lostToReset = unreceived.filter { abandonedEpochs.contains($0.epoch) }.count
            return DeliveryChecker.SubscriberReport(
                name: name, acknowledged: expected.count, received: received,
                missing: unreceived.count - lostToReset, duplicates: duplicates, outOfOrder: outOfOrder,
                resets: resets, missedFlags: missedFlags, lostToReset: lostToReset)
        }
    }
}
